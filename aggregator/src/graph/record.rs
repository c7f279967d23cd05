//! One directed edge as the store keeps it, and how one report entry changes it.
//!
//! Why fixed size and no heap: the store holds millions of records in per-agent slabs, and merging
//! a report must be a handful of additions per target. A record is 176 bytes: sent and received
//! totals, the state machine, loss windows of 10 s, 1 min and 10 min (see [`super::window`]) and a
//! decaying RTT sketch within 2 % (see [`super::sketch`]). Totals that stay 0 on a healthy edge
//! (duplicates, reordered, late, ICMP errors) live beside the records in [`super::rare`]. Why 176
//! and not 200: a slab of 5000 records of 176 bytes stays in the allocator's 896 KiB size class,
//! one of 200 bytes takes a 1 MiB one and more (measured: 225 bytes of RSS per edge).
//! Wire histograms are validated by [`echomesh_proto::Histogram::check_parts`], the same check
//! every other reader of a wire histogram applies, so the store never merges what the agent-side
//! type would refuse.

use std::time::Duration;

use echomesh_proto::histogram::{BUCKETS, bucket_value_ns};
use echomesh_proto::v1::{self, EdgeState};
use echomesh_proto::{Histogram, HistogramError};

use super::machine::{EdgeMachine, Thresholds, Transition, Window};
use super::sketch::{RttSketch, SKETCH_BUCKETS, Tick, bucket_of_wire, pair_code};
use super::window::{LossWindows, Span};

/// One directed edge: fixed size, no heap.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct EdgeRecord {
    /// Stable id of the target endpoint.
    pub target_id: u64,
    /// Lifetime probes sent (a wrapping counter: at 100 probes/s it wraps after 1.3 years, which
    /// Prometheus `rate()` reads as a counter reset).
    pub sent_total: u32,
    /// Lifetime replies received (wrapping, like `sent_total`).
    pub received_total: u32,
    /// Last report or alert that touched this edge (0: none yet); also the clock of the loss
    /// windows and the sketch's decay, which every touch brings up to date.
    pub last_seen: Tick,
    /// When the current state began.
    pub state_since: Tick,
    windows: LossWindows,
    sketch: RttSketch,
    machine: EdgeMachine,
}

impl EdgeRecord {
    /// A record for a newly assigned target whose state begins at `now`.
    pub(super) fn new(target_id: u64, now: Tick) -> Self {
        Self {
            target_id,
            state_since: now,
            ..Self::default()
        }
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> EdgeState {
        if self.target_id == 0 {
            EdgeState::Unknown
        } else {
            self.machine.state()
        }
    }

    /// Loss over the last 8–10 seconds, percent (see [`super::window`]).
    #[must_use]
    pub fn loss_10s_pct(&self, now: Tick) -> Option<f64> {
        self.windows.loss_pct(Span::Short, self.last_seen, now)
    }

    /// Loss over the last 48–60 seconds, percent.
    #[must_use]
    pub fn loss_1m_pct(&self, now: Tick) -> Option<f64> {
        self.windows.loss_pct(Span::Minute, self.last_seen, now)
    }

    /// Loss over the last eight to ten minutes, percent.
    #[must_use]
    pub fn loss_10m_pct(&self, now: Tick) -> Option<f64> {
        self.windows.loss_pct(Span::Long, self.last_seen, now)
    }

    /// Recent RTT quantile in nanoseconds.
    #[must_use]
    pub fn rtt_quantile_ns(&self, q: f64) -> Option<f64> {
        self.sketch.quantile_ns(q)
    }

    /// Worst report-window p99 of the last ten minutes, nanoseconds.
    #[must_use]
    pub fn p99_10m_ns(&self, now: Tick) -> Option<f64> {
        self.windows.worst_p99_ns(self.last_seen, now)
    }

    /// Two-minute figures of the last ten minutes, newest first (see [`LossWindows::history`]).
    #[must_use]
    pub fn history(&self, now: Tick) -> Vec<(u32, u64, u64, Option<f64>)> {
        self.windows.history(self.last_seen, now)
    }

    /// The RTT sketch.
    #[must_use]
    pub fn sketch(&self) -> &RttSketch {
        &self.sketch
    }

    /// Merges one report entry (totals, loss ring, sketch) and shows its window to the state
    /// machine. A malformed histogram refuses the entry before anything changes.
    pub(super) fn merge(
        &mut self,
        ts: &v1::TargetStats,
        thresholds: &Thresholds,
        now: Tick,
    ) -> Result<Option<Transition>, HistogramError> {
        let scan = match ts.rtt.as_ref() {
            Some(h) => scan_histogram(h)?,
            None => HistScan::default(),
        };
        self.add_entry(ts, &scan, now);
        // An MTU black hole is its own condition: such a window is judged on its small probes.
        let (mtu, sent, lost) = super::rare::judge_sizes(ts);
        let window = Window {
            sent,
            lost,
            p99: (scan.p99_fine > 0).then(|| bucket_duration(scan.p99_fine)),
        };
        self.machine.observe_mtu(mtu);
        if super::rare::worth_noting(ts) {
            self.machine.mark_rare();
        }
        let tr = self.machine.observe(thresholds, &window);
        if tr.is_some() {
            self.state_since = now;
        }
        Ok(tr)
    }

    /// True while small probes pass and the large ones fail (see [`super::machine`]).
    #[must_use]
    pub fn mtu_blackhole(&self) -> bool {
        self.machine.mtu_blackhole()
    }

    /// True when [`super::rare::RareFacts`] holds something about this edge.
    #[must_use]
    pub fn has_rare(&self) -> bool {
        self.machine.has_rare()
    }

    /// Applies an agent's immediate reachability alert.
    pub(super) fn alert(&mut self, reachable: bool, now: Tick) -> Option<Transition> {
        self.touch(now, 0, 0, 0);
        let tr = self.machine.alert(reachable);
        if tr.is_some() {
            self.state_since = now;
        }
        tr
    }

    /// Marks the edge unmeasured because its agent went silent.
    pub(super) fn mark_stale(&mut self, now: Tick) -> Option<Transition> {
        let tr = self.machine.stale()?;
        self.state_since = now;
        Some(tr)
    }

    fn add_entry(&mut self, ts: &v1::TargetStats, scan: &HistScan, now: Tick) {
        self.sent_total = self.sent_total.wrapping_add(ts.sent as u32);
        self.received_total = self.received_total.wrapping_add(ts.received as u32);
        let p99 = if scan.p99_fine > 0 {
            pair_code(bucket_of_wire(u32::from(scan.p99_fine)))
        } else {
            0
        };
        self.touch(now, ts.sent, ts.lost, p99);
        if let Some(h) = &ts.rtt {
            self.sketch.merge_wire(&h.indices, &h.counts);
        }
    }

    /// Brings the loss windows and the sketch's decay to `now` (adding a window of `sent` and
    /// `lost`) and makes `now` the last seen tick.
    fn touch(&mut self, now: Tick, sent: u64, lost: u64, p99: u8) {
        let last = self.last_seen;
        self.windows.record(last, now, sent, lost, p99);
        // The sketch halves once per minute the clock passed: recent samples dominate.
        let minute = 60 * super::sketch::TICKS_PER_SEC;
        let advanced = (now / minute).saturating_sub(last / minute);
        for _ in 0..advanced.min(16) {
            self.sketch.halve();
        }
        self.last_seen = last.max(now);
    }
}

/// The value of every fine histogram bucket, computed once (the hot path must not call `powi`).
static BUCKET_VALUES: std::sync::LazyLock<Vec<Duration>> = std::sync::LazyLock::new(|| {
    (0..BUCKETS)
        .map(|i| Duration::from_nanos(bucket_value_ns(i as u16) as u64))
        .collect()
});

fn bucket_duration(fine: u16) -> Duration {
    BUCKET_VALUES
        .get(usize::from(fine))
        .copied()
        .unwrap_or(Duration::MAX)
}

/// What a pass over a wire histogram found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct HistScan {
    /// Fine bucket of the p99 (0: no samples).
    pub(super) p99_fine: u16,
}

/// Validates a wire histogram with [`Histogram::check_parts`] (no allocation) and finds its p99
/// bucket.
pub(super) fn scan_histogram(h: &v1::Histogram) -> Result<HistScan, HistogramError> {
    let summary = Histogram::check_parts(&h.indices, &h.counts, h.sum_ns, h.min_ns, h.max_ns)?;
    let total = summary.count;
    if total == 0 {
        return Ok(HistScan::default());
    }
    let rank = echomesh_proto::histogram::nearest_rank(0.99, total);
    let mut seen = 0u64;
    for (&i, &c) in h.indices.iter().zip(&h.counts) {
        seen += u64::from(c);
        if seen > rank {
            return Ok(HistScan {
                p99_fine: (i as u16).max(1),
            });
        }
    }
    Ok(HistScan::default())
}

/// Adds every edge sketch of `records` into `acc` (for node and cluster percentiles).
pub fn accumulate(records: &[EdgeRecord], acc: &mut [u64; SKETCH_BUCKETS]) {
    for r in records {
        r.sketch.add_to(acc);
    }
}

#[cfg(test)]
mod tests;
