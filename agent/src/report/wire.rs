//! Translation between the engine and the protocol: assignments become engine input, engine
//! windows and flips become reports and alerts.
//!
//! The engine knows targets by id only; the aggregator also wants each target's slot (its index
//! in the assignment) and the assignment's generation, so every conversion goes through the
//! assignment in force ([`InForce`]). Targets that are no longer assigned are not reported.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use echomesh_proto::v1::{self, AgentMessage, agent_message};

use super::args::{MAX_ADDRESSES, RunArgs, RunError};
use crate::prober::{ProbeSettings, TargetFlip, TargetSpec, TargetWindow};

/// Report intervals below this are raised to it: a faster one only costs bandwidth.
pub const MIN_REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// The assignment in force: its generation, each target's slot, and the report interval.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InForce {
    /// Generation of the assignment.
    pub generation: u64,
    slots: HashMap<u64, u32>,
    /// How often to report.
    pub report_interval: Duration,
}

impl InForce {
    /// What `a` puts in force.
    #[must_use]
    pub fn new(a: &v1::Assignment) -> Self {
        let ids: Vec<u64> = a.targets.iter().map(|t| t.id).collect();
        let interval =
            Duration::from_millis(u64::from(a.report_interval_ms)).max(MIN_REPORT_INTERVAL);
        Self::for_ids(a.generation, &ids, interval)
    }

    /// An assignment of `ids`, in slot order.
    #[must_use]
    pub fn for_ids(generation: u64, ids: &[u64], report_interval: Duration) -> Self {
        Self {
            generation,
            slots: ids
                .iter()
                .enumerate()
                .map(|(i, &id)| (id, u32::try_from(i).unwrap_or(u32::MAX)))
                .collect(),
            report_interval,
        }
    }

    /// The slot of target `id`, if assigned.
    #[must_use]
    pub fn slot(&self, id: u64) -> Option<u32> {
        self.slots.get(&id).copied()
    }

    /// Number of assigned targets.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing is assigned.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// The Hello that opens every session; refuses an address list the aggregator would. `started`
/// is when this process started: of two agents of one node and network, the later one keeps the
/// session.
pub fn hello(args: &RunArgs, boot_id: u64, started: SystemTime) -> Result<v1::Hello, RunError> {
    if args.addresses.is_empty() || args.addresses.len() > MAX_ADDRESSES {
        return Err(RunError::Addresses(args.addresses.len()));
    }
    Ok(v1::Hello {
        node: args.node.clone(),
        pod: args.pod.clone(),
        network: args.network as i32,
        addresses: args.addresses.iter().map(ToString::to_string).collect(),
        version: env!("CARGO_PKG_VERSION").into(),
        boot_id,
        started_at_unix_ms: started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    })
}

/// Converts an engine window to the wire form; `None` for a target no longer assigned.
#[must_use]
pub fn target_stats(w: &TargetWindow, cur: &InForce) -> Option<v1::TargetStats> {
    let slot = cur.slot(w.id)?;
    let e = &w.stats.errors;
    Some(v1::TargetStats {
        target_id: w.id,
        slot,
        sent: w.stats.sent,
        received: w.stats.received,
        lost: w.stats.lost,
        duplicates: w.stats.duplicates,
        reordered: w.stats.reordered,
        late: w.stats.late,
        errors: Some(v1::IcmpErrors {
            dest_unreachable: e.net_unreachable
                + e.host_unreachable
                + e.protocol_unreachable
                + e.port_unreachable
                + e.frag_needed
                + e.admin_prohibited,
            time_exceeded: e.time_exceeded,
            parameter_problem: 0,
            other: e.other,
        }),
        rtt: Some(v1::Histogram::from(&w.stats.rtt)),
    })
}

/// Probe settings and targets from an assignment (unparseable addresses are skipped, logged).
#[must_use]
pub fn engine_input(a: &v1::Assignment) -> (ProbeSettings, Vec<TargetSpec>) {
    let ms = |v: u32, d: u64| Duration::from_millis(if v == 0 { d } else { u64::from(v) });
    let settings = ProbeSettings {
        interval: ms(a.probe_interval_ms, 1000),
        timeout: ms(a.timeout_ms, 1000),
        payload_size: a.payload_sizes.first().map_or(56, |&p| p as usize),
        down_after: if a.down_after == 0 { 3 } else { a.down_after },
    };
    let targets = a
        .targets
        .iter()
        .filter_map(|t| match t.address.parse() {
            Ok(addr) => Some(TargetSpec { id: t.id, addr }),
            Err(_) => {
                tracing::warn!(address = %t.address, "assignment target is not an IP address; skipped");
                None
            }
        })
        .collect();
    (settings, targets)
}

/// The report of one window `[start, end)` of the assignment in force.
#[must_use]
pub fn report(
    seq: u64,
    windows: &[TargetWindow],
    cur: &InForce,
    start: SystemTime,
    end: SystemTime,
) -> v1::Report {
    v1::Report {
        seq,
        generation: cur.generation,
        window_start_unix_ms: unix_ms(start),
        window_ms: end
            .duration_since(start)
            .map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
        targets: windows
            .iter()
            .filter_map(|w| target_stats(w, cur))
            .collect(),
    }
}

/// The alert for a reachability flip; `None` for a target no longer assigned.
#[must_use]
pub fn alert(f: &TargetFlip, cur: &InForce, at: SystemTime) -> Option<AgentMessage> {
    let slot = cur.slot(f.id)?;
    Some(AgentMessage {
        msg: Some(agent_message::Msg::Alert(v1::Alert {
            target_id: f.id,
            slot,
            generation: cur.generation,
            reachable: f.reachable,
            consecutive_losses: f.consecutive_losses,
            at_unix_ms: unix_ms(at),
        })),
    })
}

/// A report as a stream message.
#[must_use]
pub fn report_msg(r: &v1::Report) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Report(r.clone())),
    }
}

/// A hello as a stream message.
#[must_use]
pub fn hello_msg(h: v1::Hello) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(h)),
    }
}

/// Milliseconds since the Unix epoch (0 before it).
#[must_use]
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
