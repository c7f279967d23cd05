//! Cumulative RTT histograms grown from decaying sketches.
//!
//! Why: Prometheus computes quantiles from `rate()` over `_bucket` counters, so the counts must
//! only grow, while the edges' sketches decay. Each scrape adds the replies received since the
//! previous scrape (the growth of the edges' `received_total`), spread over the buckets in the
//! shape of the edges' current sketches, so `_count` counts real replies exactly.

use crate::graph::sketch::{SKETCH_BUCKETS, coarse_value_ns};

/// Upper bounds, in seconds, of the RTT histogram buckets (`+Inf` comes on top). 50 ms is one
/// of them because the HighLatencyP99 alert fires above it.
pub const RTT_BUCKETS_S: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
const RTT_SLOTS: usize = RTT_BUCKETS_S.len() + 1;

/// The Prometheus bucket a coarse sketch bucket's value falls in.
fn slot_of_coarse(c: usize) -> usize {
    let v = coarse_value_ns(c) / 1e9;
    RTT_BUCKETS_S
        .iter()
        .position(|&le| v <= le)
        .unwrap_or(RTT_BUCKETS_S.len())
}

/// A cumulative RTT histogram grown from decaying sketches (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Cumulative {
    counts: [u64; RTT_SLOTS],
    pub(super) sum_s: f64,
    /// Σ `received_total` at the previous scrape.
    last_received: u64,
}

impl Cumulative {
    /// Adds the replies received since the last call, shaped like `shape`.
    pub(super) fn advance(&mut self, received: u64, shape: &[u64; SKETCH_BUCKETS]) {
        // Edges that vanished make the sum shrink: never count backwards.
        let new = received.saturating_sub(self.last_received);
        self.last_received = received;
        let total: u64 = shape.iter().sum();
        if new == 0 || total == 0 {
            return;
        }
        let mut given = 0u64;
        let mut biggest = (0usize, 0u64);
        for (c, &n) in shape.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let share = (u128::from(new) * u128::from(n) / u128::from(total)) as u64;
            let slot = slot_of_coarse(c);
            self.counts[slot] += share;
            self.sum_s += share as f64 * coarse_value_ns(c) / 1e9;
            given += share;
            if n > biggest.1 {
                biggest = (c, n);
            }
        }
        // Rounding leftovers go to the fullest bucket, so _count equals the replies exactly.
        let rest = new - given;
        self.counts[slot_of_coarse(biggest.0)] += rest;
        self.sum_s += rest as f64 * coarse_value_ns(biggest.0) / 1e9;
    }

    pub(super) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(super) fn buckets(&self) -> Vec<(f64, u64)> {
        RTT_BUCKETS_S
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts)
            .collect()
    }
}
