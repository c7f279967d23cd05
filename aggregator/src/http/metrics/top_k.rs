//! The worst edges of a scrape, kept in a bounded heap.
//!
//! Why a heap of K and not a sort: a scrape sees every edge (n² of them), but exports only K; a
//! heap whose top is the *least* bad kept edge rejects most candidates with one comparison and
//! builds an [`EdgeFigure`] only for edges that are kept.

use std::collections::BinaryHeap;

use echomesh_proto::v1::EdgeState;

use super::snapshot::EdgeFigure;
use crate::graph::machine::severity;

impl EdgeFigure {
    /// How bad the edge is: state first, then loss, then p99 (larger is worse).
    fn badness(&self) -> (u8, f64, f64) {
        badness(self.state, self.loss, self.p99_s)
    }
}

/// State severity, loss and p99 of an edge, compared in that order (larger is worse).
pub(super) fn badness(state: EdgeState, loss: Option<f64>, p99_s: Option<f64>) -> (u8, f64, f64) {
    (severity(state), loss.unwrap_or(0.0), p99_s.unwrap_or(0.0))
}

/// An edge ordered so that the *best* edge is the heap's top (evicted first).
#[derive(Debug)]
struct ByBadness(EdgeFigure);

impl PartialEq for ByBadness {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for ByBadness {}
impl PartialOrd for ByBadness {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByBadness {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.0.badness(), o.0.badness());
        // Reversed: the least bad edge is the greatest, so the max-heap pops it first.
        b.0.cmp(&a.0)
            .then(b.1.total_cmp(&a.1))
            .then(b.2.total_cmp(&a.2))
    }
}

/// Keeps the `cap` worst edges seen.
#[derive(Debug)]
pub(super) struct Worst {
    cap: usize,
    heap: BinaryHeap<ByBadness>,
    pub(super) seen: u64,
}

impl Worst {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap,
            heap: BinaryHeap::with_capacity(cap.min(1 << 16) + 1),
            seen: 0,
        }
    }

    /// Offers an edge; `make` builds it only when it would be kept.
    pub(super) fn offer(&mut self, badness: (u8, f64, f64), make: impl FnOnce() -> EdgeFigure) {
        self.seen += 1;
        if self.cap == 0 {
            return;
        }
        if self.heap.len() >= self.cap
            && let Some(top) = self.heap.peek()
        {
            let b = top.0.badness();
            let worse = badness
                .0
                .cmp(&b.0)
                .then(badness.1.total_cmp(&b.1))
                .then(badness.2.total_cmp(&b.2));
            if worse != std::cmp::Ordering::Greater {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(ByBadness(make()));
    }

    /// The kept edges, worst first.
    pub(super) fn into_sorted(self) -> Vec<EdgeFigure> {
        // into_sorted_vec is ascending by Ord, i.e. worst first with the reversed order.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|b| b.0)
            .collect()
    }
}
