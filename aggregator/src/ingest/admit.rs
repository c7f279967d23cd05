//! Whether a Report may be merged at all, checked before the graph does any work.
//!
//! Why before the merge: a Report is the agent's word about what it measured, and the graph turns
//! it into loss ratios, percentiles and states that operators act on. A report that cannot be a
//! measurement (more entries than the agent was assigned, none assigned yet, more replies
//! than probes, more probes than its window can hold) is refused as a whole with the first reason
//! found, counted, and the session is closed, so a forged stream cannot drive an edge's figures
//! past 100 % or pin its counters. The bounds leave room for what real windows do: a probe sent at
//! the end of one window is answered or expires in the next one, so each counter may exceed the
//! window's `sent` by the probes that can be in flight (timeout / interval, plus one).

use std::time::Duration;

use echomesh_proto::v1;
use tonic::Status;

use super::IngestConfig;
use crate::graph::AgentEntry;

/// Longest window whose `sent` is credited: longer windows (a long-delayed tick) get no more room.
const MAX_CREDITED_WINDOW: Duration = Duration::from_secs(60);
/// How many times the nominal probe rate a window's `sent` may reach (ticks jitter, intervals
/// change between aggregators); a forged counter is orders of magnitude beyond it.
const RATE_SLACK: u64 = 64;
/// Most duplicate replies credited per probe (a looping or mirrored path duplicates a lot, but
/// not without bound).
const DUPLICATES_PER_PROBE: u64 = 64;

/// Why a Report was refused before the merge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inadmissible {
    /// No Assignment was sent on this session yet.
    #[error("report {seq} before any Assignment on this session")]
    BeforeAssignment {
        /// The report's sequence number.
        seq: u64,
    },
    /// More entries than targets.
    #[error("report {seq} has {got} entries, more than its assignment's {max} targets")]
    TooManyEntries {
        /// The report's sequence number.
        seq: u64,
        /// Entries.
        got: usize,
        /// Bound.
        max: usize,
    },
    /// A counter that cannot be.
    #[error("report {seq}, target {target:016x}: {what}")]
    Counter {
        /// The report's sequence number.
        seq: u64,
        /// The entry's target id.
        target: u64,
        /// Which relation failed, with the figures.
        what: String,
    },
}

impl Inadmissible {
    /// The status the session ends with.
    #[must_use]
    pub fn status(&self) -> Status {
        match self {
            Self::BeforeAssignment { .. } => Status::failed_precondition(self.to_string()),
            _ => Status::invalid_argument(self.to_string()),
        }
    }
}

/// Bounds derived from what the aggregator tells agents.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    probe_interval_ms: u64,
    in_flight: u64,
    /// Most entries in a report of an older generation (a replay from before a reassignment).
    pub max_replay_entries: usize,
}

impl Bounds {
    /// The bounds for agents told `cfg`.
    #[must_use]
    pub fn new(cfg: &IngestConfig) -> Self {
        let interval = cfg.probe_interval.as_millis().max(1);
        let in_flight = cfg.probe_timeout.as_millis().div_ceil(interval) + 1;
        Self {
            probe_interval_ms: u64::try_from(interval).unwrap_or(u64::MAX),
            in_flight: u64::try_from(in_flight).unwrap_or(u64::MAX),
            // Four targets per agent (two networks, two families) or an agent's default
            // --max-targets, whichever is larger.
            max_replay_entries: cfg.max_agents.saturating_mul(4).max(10_000),
        }
    }

    /// Most probes one target's entry may count in a window of `window_ms`.
    #[must_use]
    pub fn max_sent(&self, window_ms: u32) -> u64 {
        let w = u64::from(window_ms).min(MAX_CREDITED_WINDOW.as_millis() as u64);
        (w / self.probe_interval_ms + 1)
            .saturating_mul(RATE_SLACK)
            .saturating_add(self.in_flight)
    }

    /// Checks one entry's counters.
    pub fn entry(&self, window_ms: u32, t: &v1::TargetStats) -> Result<(), String> {
        let room = t.sent.saturating_add(self.in_flight);
        let max_sent = self.max_sent(window_ms);
        if t.sent > max_sent {
            return Err(format!(
                "sent {} is more than a {window_ms} ms window can hold (at most {max_sent})",
                t.sent
            ));
        }
        if t.received.saturating_add(t.lost) > room {
            return Err(format!(
                "received {} + lost {} exceed sent {} plus {} in flight",
                t.received, t.lost, t.sent, self.in_flight
            ));
        }
        if t.late > room {
            return Err(format!(
                "late {} exceeds sent {} plus {} in flight",
                t.late, t.sent, self.in_flight
            ));
        }
        if t.reordered > t.received {
            return Err(format!(
                "reordered {} exceeds received {}",
                t.reordered, t.received
            ));
        }
        if t.duplicates > room.saturating_mul(DUPLICATES_PER_PROBE) {
            return Err(format!(
                "duplicates {} exceed {DUPLICATES_PER_PROBE} per probe sent ({})",
                t.duplicates, t.sent
            ));
        }
        if let Some(e) = &t.errors {
            let errors = e
                .dest_unreachable
                .saturating_add(e.time_exceeded)
                .saturating_add(e.parameter_problem)
                .saturating_add(e.other);
            if errors > room.saturating_mul(DUPLICATES_PER_PROBE) {
                return Err(format!(
                    "{errors} ICMP errors exceed {DUPLICATES_PER_PROBE} per probe sent ({})",
                    t.sent
                ));
            }
        }
        Ok(())
    }
}

/// Checks `r` from `agent`, on a session that has (`assigned`) or has not yet been sent an
/// assignment.
pub fn admit(
    bounds: &Bounds,
    agent: &AgentEntry,
    assigned: bool,
    r: &v1::Report,
) -> Result<(), Inadmissible> {
    let seq = r.seq;
    if !assigned {
        return Err(Inadmissible::BeforeAssignment { seq });
    }
    let (latest, size) = {
        let slab = agent.slab.lock();
        (slab.generation, slab.records.len())
    };
    // Another generation is a replay from before a reassignment, or from a previous aggregator
    // (whose generations may even lie ahead of ours when clocks differ): it is matched by target
    // id, and bounded by the replay cap rather than today's size.
    let max = if r.generation == latest {
        size
    } else {
        bounds.max_replay_entries.max(size)
    };
    if r.targets.len() > max {
        return Err(Inadmissible::TooManyEntries {
            seq,
            got: r.targets.len(),
            max,
        });
    }
    for t in &r.targets {
        bounds
            .entry(r.window_ms, t)
            .map_err(|what| Inadmissible::Counter {
                seq,
                target: t.target_id,
                what,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
