//! One pass over the graph per scrape: per-node groups, edge counts, the worst edges.
//!
//! Why computed at scrape time: the graph already holds every figure, so walking the slabs once
//! per scrape (one slab lock at a time, like the query API) adds nothing to the ingest hot path.
//!
//! Edges towards expected-down nodes (cordoned, drained, being deleted: planned outages; the
//! edges' `expected_down` flag) are left out of every figure the alert rules read (the per-node
//! and cluster loss ratios and RTT histograms, in and out) and of the top-K and per-edge series,
//! so a planned reboot cannot page through its peers' figures. So are the edges an agent on such a
//! node measures: a node being shut down tears its network down around its still-running agent,
//! and the rules drop every series of that node anyway. Both are still counted in
//! `echomesh_edges{state}` and in `echomesh_expected_down_edges`, and each such node is named by
//! `echomesh_node_expected_down`. A node that is only NotReady is not expected down and keeps
//! counting: that is what a partition looks like.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use echomesh_proto::v1::{EdgeState, Network};

use super::MetricsConfig;
use super::top_k::{Worst, badness};
use crate::graph::sketch::SKETCH_BUCKETS;
use crate::graph::{EdgeRecord, Endpoint, Graph};

/// Which way the probes of a node aggregate go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Probes towards the node.
    In,
    /// Probes the node's agent sent.
    Out,
}

impl Direction {
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// `(node, network, direction)`.
pub(super) type GroupKey = (Arc<str>, Network, Direction);

/// What one pass over the graph found for one node, network and direction.
#[derive(Debug, Clone)]
pub(super) struct Group {
    /// Edges in the group.
    pub(super) edges: u64,
    /// Σ `received_total` of the edges.
    pub(super) received: u64,
    /// Σ of the edges' sketches.
    pub(super) shape: [u64; SKETCH_BUCKETS],
    /// Σ of the edges' last-minute loss ratios, and how many edges had one.
    loss_sum: f64,
    loss_n: u64,
}

impl Default for Group {
    fn default() -> Self {
        Self {
            edges: 0,
            received: 0,
            shape: [0; SKETCH_BUCKETS],
            loss_sum: 0.0,
            loss_n: 0,
        }
    }
}

impl Group {
    fn add(&mut self, rec: &EdgeRecord, loss: Option<f64>) {
        self.edges += 1;
        self.received = self.received.saturating_add(u64::from(rec.received_total));
        rec.sketch().add_to(&mut self.shape);
        if let Some(l) = loss {
            self.loss_sum += l;
            self.loss_n += 1;
        }
    }

    pub(super) fn merge(&mut self, o: &Group) {
        self.edges += o.edges;
        self.received = self.received.saturating_add(o.received);
        for (a, b) in self.shape.iter_mut().zip(&o.shape) {
            *a += b;
        }
        self.loss_sum += o.loss_sum;
        self.loss_n += o.loss_n;
    }

    pub(super) fn loss_ratio(&self) -> Option<f64> {
        (self.loss_n > 0).then(|| self.loss_sum / self.loss_n as f64)
    }
}

/// One edge as exported in the top-K and per-edge series.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeFigure {
    /// Source node.
    pub src: Arc<str>,
    /// Source agent's network.
    pub src_network: Network,
    /// Target node.
    pub dst: Arc<str>,
    /// Target endpoint's network.
    pub dst_network: Network,
    /// Target address (a node may have several per network, e.g. dual stack).
    pub dst_addr: IpAddr,
    /// Current state.
    pub state: EdgeState,
    /// Loss over the last minute, 0..=1.
    pub loss: Option<f64>,
    /// Recent p99 RTT, seconds.
    pub p99_s: Option<f64>,
}

/// Everything one scrape exports about the graph, gathered in one pass.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Edges per state: up, degraded, down, unknown.
    pub edges_by_state: [u64; 4],
    pub(super) groups: BTreeMap<GroupKey, Group>,
    /// The top-K worst unhealthy edges, worst first.
    pub worst: Vec<EdgeFigure>,
    /// Per-edge series (empty unless enabled), worst first, capped.
    pub edges: Vec<EdgeFigure>,
    /// Edges left out of the per-edge series by the cap.
    pub edges_dropped: u64,
    /// Edges towards or from expected-down nodes (left out of the per-node, top-K and per-edge
    /// figures).
    pub expected_down_edges: u64,
    /// The expected-down nodes, sorted.
    pub expected_down_nodes: Vec<Arc<str>>,
    /// Edges marked as MTU black holes (all of them) ...
    pub mtu_blackhole_edges: u64,
    /// ... and the first top-K of them, with the failing size.
    pub mtu_blackholes: Vec<super::rare::MtuFigure>,
}

/// Walks the graph once.
#[must_use]
pub fn gather(graph: &Graph, cfg: &MetricsConfig) -> Snapshot {
    // Target id -> (endpoint, index of its node's `in` group): one hash lookup per edge, no
    // string comparisons on the per-edge path.
    let mut in_keys: Vec<GroupKey> = Vec::new();
    let mut in_index: HashMap<(Arc<str>, Network), usize> = HashMap::new();
    let expected_down = graph.expected_down_nodes();
    let eps: HashMap<u64, (Endpoint, usize, bool)> = graph
        .endpoints()
        .into_iter()
        .map(|(id, ep)| {
            let down = expected_down.contains(&ep.node);
            let gi = *in_index
                .entry((ep.node.clone(), ep.network))
                .or_insert_with(|| {
                    in_keys.push((ep.node.clone(), ep.network, Direction::In));
                    in_keys.len() - 1
                });
            (id, (ep, gi, down))
        })
        .collect();
    let mut in_groups = vec![Group::default(); in_keys.len()];
    let now = graph.now();
    let mut snap = Snapshot::default();
    let mut worst = Worst::new(cfg.top_k);
    let mut all = Worst::new(if cfg.edge_series {
        cfg.max_edge_series
    } else {
        0
    });
    for a in graph.agents() {
        let src = a.key.node.clone();
        let src_net = a.key.network;
        let src_down = expected_down.contains(&src);
        let mut out = Group::default();
        let slab = a.slab.lock();
        for rec in &slab.records {
            let state = rec.state();
            let i = match state {
                EdgeState::Up => 0,
                EdgeState::Degraded => 1,
                EdgeState::Down => 2,
                EdgeState::Unknown | EdgeState::Unspecified => 3,
            };
            snap.edges_by_state[i] += 1;
            // A stale edge is not measured: its old loss must not count.
            let loss = if state == EdgeState::Unknown {
                None
            } else {
                rec.loss_1m_pct(now).map(|p| p / 100.0)
            };
            let target = eps.get(&rec.target_id);
            if src_down || target.is_some_and(|t| t.2) {
                snap.expected_down_edges += 1;
                continue;
            }
            out.add(rec, loss);
            let Some((ep, gi, _)) = target else {
                continue;
            };
            in_groups[*gi].add(rec, loss);
            if rec.mtu_blackhole() {
                snap.mtu_blackhole_edges += 1;
                if snap.mtu_blackholes.len() < cfg.top_k {
                    snap.mtu_blackholes.push(super::rare::MtuFigure {
                        src: src.clone(),
                        src_network: src_net,
                        dst: ep.node.clone(),
                        dst_addr: ep.addr,
                        payload: graph
                            .rare
                            .edge(&a.key, rec.target_id)
                            .map_or(0, |r| r.failing_payload),
                    });
                }
            }
            let unhealthy = state != EdgeState::Up || loss.is_some_and(|l| l > 0.0);
            if !unhealthy && !cfg.edge_series {
                continue;
            }
            let p99_s = rec.rtt_quantile_ns(0.99).map(|ns| ns / 1e9);
            let b = badness(state, loss, p99_s);
            let make = || EdgeFigure {
                src: src.clone(),
                src_network: src_net,
                dst: ep.node.clone(),
                dst_network: ep.network,
                dst_addr: ep.addr,
                state,
                loss,
                p99_s,
            };
            if unhealthy {
                worst.offer(b, make);
            }
            if cfg.edge_series {
                all.offer(b, make);
            }
        }
        drop(slab);
        if src_down {
            continue;
        }
        snap.groups
            .entry((src, src_net, Direction::Out))
            .or_default()
            .merge(&out);
    }
    for (k, g) in in_keys.into_iter().zip(in_groups) {
        // Addresses nobody probes (yet) export nothing.
        if g.edges > 0 {
            snap.groups.insert(k, g);
        }
    }
    snap.expected_down_nodes = expected_down.into_iter().collect();
    snap.worst = worst.into_sorted();
    if cfg.edge_series {
        let seen = all.seen;
        snap.edges = all.into_sorted();
        snap.edges_dropped = seen - snap.edges.len() as u64;
    }
    snap
}
