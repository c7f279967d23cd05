//! Roll-ups: the graph summed per node and per zone, the views that stay readable (and small on
//! the wire) at thousands of nodes, where an N×N matrix or an edge list is not.
//!
//! Why one walk shared by both: each roll-up is a single pass over the slabs (one agent's lock at
//! a time), copying per edge only its two node indices, state, loss and p99 into running tallies;
//! nothing per edge outlives the walk except one `f32` per edge for the p99 medians.
//!
//! - [`nodes`]: `NodeSummary`, one row per node with a badness score.
//! - [`zones`]: `ZoneMatrix`, one cell per (source zone, target zone).

pub mod nodes;
pub mod zones;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use echomesh_proto::v1::{EdgeState, Network};

use crate::graph::{Graph, IdMap};

/// One edge as the roll-ups see it.
#[derive(Debug, Clone, Copy)]
pub struct EdgeFacts {
    /// Source node index into [`Walked::nodes`].
    pub src: usize,
    /// Target node index into [`Walked::nodes`].
    pub dst: usize,
    /// Source zone index into [`Walked::zone_names`].
    pub src_zone: usize,
    /// Target zone index into [`Walked::zone_names`].
    pub dst_zone: usize,
    /// Its state.
    pub state: EdgeState,
    /// Loss over the last minute, percent (`None`: not measured).
    pub loss_1m: Option<f64>,
    /// Loss over the last 10 seconds, percent.
    pub loss_10s: Option<f64>,
    /// Recent p99, microseconds.
    pub p99_us: Option<f64>,
}

/// The nodes a walk met (sorted by name), each with its zone ("" when unknown).
#[derive(Debug, Default)]
pub struct Walked {
    /// Node names, sorted.
    pub nodes: Vec<Arc<str>>,
    /// Each node's zone, "" when unknown.
    pub zones: Vec<Arc<str>>,
    /// The distinct zones, sorted, "" (unknown) last.
    pub zone_names: Vec<Arc<str>>,
    /// Each node's index into `zone_names`.
    pub zone_idx: Vec<usize>,
}

/// Walks every edge whose source agent is on `network` (`Unspecified`: both), calling `f` once
/// per edge whose target is a known endpoint of that network.
pub fn walk(graph: &Graph, network: Network, mut f: impl FnMut(&EdgeFacts)) -> Walked {
    let on = |n: Network| network == Network::Unspecified || n == network;
    let agents: Vec<_> = graph
        .agents()
        .into_iter()
        .filter(|a| on(a.key.network))
        .collect();
    let endpoints: Vec<_> = graph
        .endpoints()
        .into_iter()
        .filter(|(_, e)| on(e.network))
        .collect();
    let mut names: Vec<Arc<str>> = agents
        .iter()
        .map(|a| a.key.node.clone())
        .chain(endpoints.iter().map(|(_, e)| e.node.clone()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (&**n, i)).collect();
    let target_index: IdMap<usize> = endpoints
        .iter()
        .filter_map(|(id, e)| Some((*id, *index.get(&*e.node)?)))
        .collect();
    let zone_map = graph.node_zones();
    let zones: Vec<Arc<str>> = names.iter().map(|n| zone_of(&zone_map, n)).collect();
    let zone_names = ordered_zones(zones.clone());
    let zone_rank: HashMap<&str, usize> = zone_names
        .iter()
        .enumerate()
        .map(|(i, z)| (&**z, i))
        .collect();
    let zone_idx: Vec<usize> = zones.iter().map(|z| zone_rank[&**z]).collect();
    let now = graph.now();
    for a in &agents {
        let Some(&src) = index.get(&*a.key.node) else {
            continue;
        };
        let slab = a.slab.lock();
        for rec in &slab.records {
            let Some(&dst) = target_index.get(&rec.target_id) else {
                continue;
            };
            f(&EdgeFacts {
                src,
                dst,
                src_zone: zone_idx[src],
                dst_zone: zone_idx[dst],
                state: rec.state(),
                loss_1m: rec.loss_1m_pct(now),
                loss_10s: rec.loss_10s_pct(now),
                p99_us: rec.rtt_quantile_ns(0.99).map(|v| v / 1000.0),
            });
        }
    }
    Walked {
        nodes: names,
        zones,
        zone_names,
        zone_idx,
    }
}

/// Zones in display order: sorted by name, the unknown zone "" last, each once.
#[must_use]
pub fn ordered_zones(mut zones: Vec<Arc<str>>) -> Vec<Arc<str>> {
    zones.sort_unstable_by(|a, b| (a.is_empty(), a).cmp(&(b.is_empty(), b)));
    zones.dedup();
    zones
}

/// `node`'s zone in `zones`, "" when unknown.
#[must_use]
pub fn zone_of(zones: &BTreeMap<Arc<str>, Arc<str>>, node: &str) -> Arc<str> {
    zones.get(node).cloned().unwrap_or_else(|| Arc::from(""))
}

/// Edges per state, mean loss and the p99 values, summed over a group of edges.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Edges UP.
    pub up: u64,
    /// Edges DEGRADED.
    pub degraded: u64,
    /// Edges DOWN.
    pub down: u64,
    /// Edges UNKNOWN.
    pub unknown: u64,
    loss_1m: (f64, u64),
    loss_10s: (f64, u64),
    p99s: Vec<f32>,
}

impl Tally {
    /// Counts one edge.
    pub fn add(&mut self, e: &EdgeFacts) {
        match e.state {
            EdgeState::Up => self.up += 1,
            EdgeState::Degraded => self.degraded += 1,
            EdgeState::Down => self.down += 1,
            EdgeState::Unknown | EdgeState::Unspecified => self.unknown += 1,
        }
        if let Some(l) = e.loss_1m {
            self.loss_1m.0 += l;
            self.loss_1m.1 += 1;
        }
        if let Some(l) = e.loss_10s {
            self.loss_10s.0 += l;
            self.loss_10s.1 += 1;
        }
        if let Some(p) = e.p99_us {
            self.p99s.push(p as f32);
        }
    }

    /// Every edge counted.
    #[must_use]
    pub fn edges(&self) -> u64 {
        self.up + self.degraded + self.down + self.unknown
    }

    /// The mean 1-minute loss of the measured edges, percent (0 when none).
    #[must_use]
    pub fn loss_1m_pct(&self) -> f64 {
        mean(self.loss_1m)
    }

    /// The mean 10-second loss of the measured edges, percent (0 when none).
    #[must_use]
    pub fn loss_10s_pct(&self) -> f64 {
        mean(self.loss_10s)
    }

    /// The median of the edges' p99, microseconds (0 when no edge has a sample). Reorders the
    /// values it keeps.
    #[must_use]
    pub fn median_p99_us(&mut self) -> f64 {
        let n = self.p99s.len();
        if n == 0 {
            return 0.0;
        }
        let (_, m, _) = self.p99s.select_nth_unstable_by(n / 2, f32::total_cmp);
        f64::from(*m)
    }
}

fn mean((sum, n): (f64, u64)) -> f64 {
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// The zone a request names: unset means every zone, `Some("")` the nodes of no known zone.
pub fn zone_matches(filter: Option<&str>, zone: &str) -> bool {
    filter.is_none_or(|f| f == zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(state: EdgeState, loss: Option<f64>, p99: Option<f64>) -> EdgeFacts {
        EdgeFacts {
            src: 0,
            dst: 1,
            src_zone: 0,
            dst_zone: 0,
            state,
            loss_1m: loss,
            loss_10s: loss,
            p99_us: p99,
        }
    }

    #[test]
    fn a_tally_counts_states_and_averages_only_measured_edges() {
        let mut t = Tally::default();
        t.add(&facts(EdgeState::Up, Some(0.0), Some(100.0)));
        t.add(&facts(EdgeState::Down, Some(100.0), None));
        t.add(&facts(EdgeState::Unknown, None, None));
        t.add(&facts(EdgeState::Degraded, Some(20.0), Some(900.0)));
        t.add(&facts(EdgeState::Up, Some(0.0), Some(200.0)));
        assert_eq!((t.up, t.degraded, t.down, t.unknown), (2, 1, 1, 1));
        assert_eq!(t.edges(), 5);
        assert!((t.loss_1m_pct() - 30.0).abs() < 1e-9);
        // Median of 100, 200, 900: one slow edge does not set it.
        assert!((t.median_p99_us() - 200.0).abs() < 1e-3);
        assert!(Tally::default().median_p99_us().abs() < f64::EPSILON);
    }

    #[test]
    fn zones_are_sorted_with_the_unknown_zone_last() {
        let z = ordered_zones(vec!["b".into(), "".into(), "a".into(), "b".into()]);
        let z: Vec<&str> = z.iter().map(|s| &**s).collect();
        assert_eq!(z, ["a", "b", ""]);
    }

    #[test]
    fn an_unset_zone_filter_matches_every_zone_and_empty_only_the_unknown() {
        assert!(zone_matches(None, "a"));
        assert!(zone_matches(Some(""), ""));
        assert!(!zone_matches(Some(""), "a"));
        assert!(zone_matches(Some("a"), "a"));
    }
}

#[cfg(test)]
mod cluster_tests;
