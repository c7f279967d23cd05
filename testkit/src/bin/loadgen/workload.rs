//! What the simulated cluster looks like: agent names, addresses and report contents.
//!
//! Every mode builds the same cluster so their figures can be compared; the report window is
//! shaped like a real one (10 probes over 5 histogram buckets) because the merge cost depends on it.

use std::time::Duration;

use echomesh_proto::Histogram;

/// The node name of simulated agent `i`.
pub(crate) fn node_name(i: usize) -> String {
    format!("n{i:05}")
}

/// The (never contacted) address of simulated agent `i`.
pub(crate) fn node_addr(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

/// A realistic report window: 10 probes at ~200-400 µs in 5 buckets.
pub(crate) fn window_histogram() -> Histogram {
    let mut h = Histogram::new();
    for us in [200u64, 220, 250, 250, 260, 300, 300, 310, 350, 400] {
        h.record(Duration::from_micros(us));
    }
    h
}

/// Targets per agent that flap (5 s lost, 5 s fine) in the fixed-load run, so WatchEvents has
/// a steady stream of state changes to deliver while ingest is measured.
pub(crate) const FLAPPING: usize = 10;
