//! `/metrics`: the graph as Prometheus series (OpenMetrics or classic text), with bounded
//! cardinality.
//!
//! Why computed at scrape time: the graph already holds every figure (states, loss rings, RTT
//! sketches), so a [`Collector`] walks the slabs once per scrape — one slab lock at a time, like the
//! query API — and nothing is added to the ingest hot path.
//!
//! Why the cardinality is bounded: an n-node cluster has n² edges, so per-edge series are off by
//! default. What is exported is linear in nodes: per node and direction (`out`: probes the node's
//! agent sent, `in`: probes towards the node) a loss ratio and an RTT histogram, plus the top-K worst
//! edges (K fixed, and only edges that are not healthy, so a quiet cluster exports none and the
//! set does not churn) and, when explicitly enabled, per-edge series capped at a fixed count.
//!
//! Why the RTT histograms are cumulative although the sketches decay: Prometheus computes
//! quantiles from `rate()` over `_bucket` counters, so the counts must only grow. Each scrape adds
//! the replies received since the previous scrape (the growth of the edges' `received_total`),
//! spread over the buckets in the shape of the edges' current sketches (the last minute or two).
//! `_count` therefore counts real replies exactly; the bucket shape carries the sketch's 18%
//! error and lags by a minute or two, which is fine for alerts that wait 10 minutes.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use echomesh_proto::v1::{EdgeState, Network};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::graph::{Endpoint, Graph, network_name};
use crate::ingest::Ingest;
use crate::sketch::{SKETCH_BUCKETS, coarse_value_ns};

/// What `/metrics` exports beyond the always-on, per-node series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// How many of the worst edges get their own series.
    pub top_k: usize,
    /// Export one loss and one p99 series per edge (n² series: for small clusters only).
    pub edge_series: bool,
    /// Most edges exported when `edge_series` is on; the worst come first.
    pub max_edge_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            top_k: 20,
            edge_series: false,
            max_edge_series: 10_000,
        }
    }
}

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

/// Which way the probes of a node aggregate go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Probes towards the node.
    In,
    /// Probes the node's agent sent.
    Out,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// `(node, network, direction)`.
type GroupKey = (Arc<str>, Network, Direction);

/// What one pass over the graph found for one node, network and direction.
#[derive(Debug, Clone)]
struct Group {
    /// Edges in the group.
    edges: u64,
    /// Σ `received_total` of the edges.
    received: u64,
    /// Σ of the edges' sketches.
    shape: [u64; SKETCH_BUCKETS],
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
    fn add(&mut self, rec: &crate::graph::EdgeRecord, loss: Option<f64>) {
        self.edges += 1;
        self.received = self.received.saturating_add(u64::from(rec.received_total));
        rec.sketch().add_to(&mut self.shape);
        if let Some(l) = loss {
            self.loss_sum += l;
            self.loss_n += 1;
        }
    }

    fn merge(&mut self, o: &Group) {
        self.edges += o.edges;
        self.received = self.received.saturating_add(o.received);
        for (a, b) in self.shape.iter_mut().zip(&o.shape) {
            *a += b;
        }
        self.loss_sum += o.loss_sum;
        self.loss_n += o.loss_n;
    }

    fn loss_ratio(&self) -> Option<f64> {
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

impl EdgeFigure {
    /// How bad the edge is: state first, then loss, then p99 (larger is worse).
    fn badness(&self) -> (u8, f64, f64) {
        badness(self.state, self.loss, self.p99_s)
    }
}

fn badness(state: EdgeState, loss: Option<f64>, p99_s: Option<f64>) -> (u8, f64, f64) {
    let rank = match state {
        EdgeState::Down => 3,
        EdgeState::Degraded => 2,
        EdgeState::Unknown | EdgeState::Unspecified => 1,
        EdgeState::Up => 0,
    };
    (rank, loss.unwrap_or(0.0), p99_s.unwrap_or(0.0))
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
struct Worst {
    cap: usize,
    heap: BinaryHeap<ByBadness>,
    seen: u64,
}

impl Worst {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            heap: BinaryHeap::with_capacity(cap.min(1 << 16) + 1),
            seen: 0,
        }
    }

    /// Offers an edge; `make` builds it only when it would be kept.
    fn offer(&mut self, badness: (u8, f64, f64), make: impl FnOnce() -> EdgeFigure) {
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
    fn into_sorted(self) -> Vec<EdgeFigure> {
        // into_sorted_vec is ascending by Ord, i.e. worst first with the reversed order.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|b| b.0)
            .collect()
    }
}

/// Everything one scrape exports about the graph, gathered in one pass.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Edges per state: up, degraded, down, unknown.
    pub edges_by_state: [u64; 4],
    groups: BTreeMap<GroupKey, Group>,
    /// The top-K worst unhealthy edges, worst first.
    pub worst: Vec<EdgeFigure>,
    /// Per-edge series (empty unless enabled), worst first, capped.
    pub edges: Vec<EdgeFigure>,
    /// Edges left out of the per-edge series by the cap.
    pub edges_dropped: u64,
}

/// Walks the graph once.
#[must_use]
pub fn gather(graph: &Graph, cfg: &MetricsConfig) -> Snapshot {
    // Target id -> (endpoint, index of its node's `in` group): one hash lookup per edge, no
    // string comparisons on the per-edge path.
    let mut in_keys: Vec<GroupKey> = Vec::new();
    let mut in_index: HashMap<(Arc<str>, Network), usize> = HashMap::new();
    let eps: HashMap<u64, (Endpoint, usize)> = graph
        .endpoints()
        .into_iter()
        .map(|(id, ep)| {
            let gi = *in_index
                .entry((ep.node.clone(), ep.network))
                .or_insert_with(|| {
                    in_keys.push((ep.node.clone(), ep.network, Direction::In));
                    in_keys.len() - 1
                });
            (id, (ep, gi))
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
            out.add(rec, loss);
            let Some((ep, gi)) = eps.get(&rec.target_id) else {
                continue;
            };
            in_groups[*gi].add(rec, loss);
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
    snap.worst = worst.into_sorted();
    if cfg.edge_series {
        let seen = all.seen;
        snap.edges = all.into_sorted();
        snap.edges_dropped = seen - snap.edges.len() as u64;
    }
    snap
}

/// A cumulative RTT histogram grown from decaying sketches (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
struct Cumulative {
    counts: [u64; RTT_SLOTS],
    sum_s: f64,
    /// Σ `received_total` at the previous scrape.
    last_received: u64,
}

impl Cumulative {
    /// Adds the replies received since the last call, shaped like `shape`.
    fn advance(&mut self, received: u64, shape: &[u64; SKETCH_BUCKETS]) {
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

    fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn buckets(&self) -> Vec<(f64, u64)> {
        RTT_BUCKETS_S
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts)
            .collect()
    }
}

/// Histogram state carried from scrape to scrape.
#[derive(Debug, Default)]
struct History {
    nodes: HashMap<GroupKey, Cumulative>,
    cluster: BTreeMap<Network, Cumulative>,
}

/// The aggregator's collector: graph figures, ingest counters, process figures.
#[derive(Debug)]
pub struct AggregatorCollector {
    graph: Arc<Graph>,
    ingest: Ingest,
    cfg: MetricsConfig,
    history: Mutex<History>,
}

fn net_label(n: Network) -> &'static str {
    network_name(n)
}

impl AggregatorCollector {
    /// A collector over `graph` and `ingest`.
    #[must_use]
    pub fn new(graph: Arc<Graph>, ingest: Ingest, cfg: MetricsConfig) -> Self {
        Self {
            graph,
            ingest,
            cfg,
            history: Mutex::new(History::default()),
        }
    }

    fn encode_graph(
        &self,
        enc: &mut DescriptorEncoder,
        snap: &Snapshot,
    ) -> Result<(), std::fmt::Error> {
        {
            let g = ConstGauge::new(0i64);
            let mut m = enc.encode_descriptor(
                "echomesh_edges",
                "Directed edges (source agent to target address) by state.",
                None,
                g.metric_type(),
            )?;
            for (state, n) in ["up", "degraded", "down", "unknown"]
                .iter()
                .zip(snap.edges_by_state)
            {
                let labels = [("state", *state)];
                ConstGauge::new(n as i64).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "echomesh_node_loss_ratio",
                "Mean loss over the last minute of the node's edges, 0..1 (direction in: probes \
                 towards the node, out: probes its agent sent); stale edges are left out.",
                None,
                MetricType::Gauge,
            )?;
            for ((node, net, dir), g) in &snap.groups {
                if let Some(l) = g.loss_ratio() {
                    let labels = [
                        ("node", &**node),
                        ("network", net_label(*net)),
                        ("direction", dir.label()),
                    ];
                    ConstGauge::new(l).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let mut h = self.history.lock();
        // Forget nodes that left the graph, so their series end.
        h.nodes.retain(|k, _| snap.groups.contains_key(k));
        {
            let mut m = enc.encode_descriptor(
                "echomesh_node_rtt",
                "Echo round-trip times of the node's edges (direction as for echomesh_node_loss_ratio).",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (key, g) in &snap.groups {
                let c = h.nodes.entry(key.clone()).or_default();
                c.advance(g.received, &g.shape);
                let labels = [
                    ("node", &*key.0),
                    ("network", net_label(key.1)),
                    ("direction", key.2.label()),
                ];
                m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    c.sum_s,
                    c.count(),
                    &c.buckets(),
                    None,
                )?;
            }
        }
        let mut cluster: BTreeMap<Network, Group> = BTreeMap::new();
        for ((_, net, dir), g) in &snap.groups {
            if *dir == Direction::Out {
                cluster.entry(*net).or_default().merge(g);
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "echomesh_loss_ratio",
                "Mean loss over the last minute of all edges from agents on this network, 0..1.",
                None,
                MetricType::Gauge,
            )?;
            for (net, g) in &cluster {
                if let Some(l) = g.loss_ratio() {
                    let labels = [("network", net_label(*net))];
                    ConstGauge::new(l).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "echomesh_rtt",
                "Echo round-trip times of all edges from agents on this network.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (net, g) in &cluster {
                let c = h.cluster.entry(*net).or_default();
                c.advance(g.received, &g.shape);
                let labels = [("network", net_label(*net))];
                m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    c.sum_s,
                    c.count(),
                    &c.buckets(),
                    None,
                )?;
            }
        }
        drop(h);
        encode_edges(
            enc,
            "echomesh_top_edge",
            &format!(
                "one of the {} worst unhealthy edges (not UP, or losing probes)",
                self.cfg.top_k
            ),
            &snap.worst,
        )?;
        if self.cfg.edge_series {
            encode_edges(
                enc,
                "echomesh_edge",
                &format!(
                    "an edge (per-edge series, at most {})",
                    self.cfg.max_edge_series
                ),
                &snap.edges,
            )?;
            let g = ConstGauge::new(snap.edges_dropped as i64);
            g.encode(enc.encode_descriptor(
                "echomesh_edge_series_dropped",
                "Edges left out of the per-edge series by --metrics-max-edge-series.",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }

    fn encode_ingest(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let agents = self.graph.agents();
        for (name, help, v) in [
            (
                "echomesh_connected_agents",
                "Agents with a live Session stream.",
                self.ingest.connected() as i64,
            ),
            (
                "echomesh_known_agents",
                "Agents in the graph, connected or not yet forgotten.",
                agents.len() as i64,
            ),
        ] {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let c = &self.graph.counters;
        {
            let mut m = enc.encode_descriptor(
                "echomesh_reports",
                "Agent reports received (result: merged, or duplicate = a replay already merged).",
                None,
                MetricType::Counter,
            )?;
            for (result, v) in [
                ("merged", c.reports_merged.load(Ordering::Relaxed)),
                ("duplicate", c.reports_duplicate.load(Ordering::Relaxed)),
            ] {
                let labels = [("result", result)];
                ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let v = ConstCounter::new(c.edge_updates.load(Ordering::Relaxed));
            v.encode(enc.encode_descriptor(
                "echomesh_edge_updates",
                "Per-target entries of merged reports.",
                None,
                v.metric_type(),
            )?)?;
        }
        {
            let mut m = enc.encode_descriptor(
                "echomesh_ingest_errors",
                "Refused sessions, messages and report entries, by reason.",
                None,
                MetricType::Counter,
            )?;
            let mut rows: Vec<(&str, u64)> = self
                .ingest
                .errors()
                .iter()
                .map(|(r, n)| (r.label(), *n))
                .collect();
            rows.push(("unknown_target", c.unknown_targets.load(Ordering::Relaxed)));
            rows.push((
                "invalid_histogram",
                c.invalid_entries.load(Ordering::Relaxed),
            ));
            for (reason, v) in rows {
                let labels = [("reason", reason)];
                ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "echomesh_build",
                "Build information.",
                None,
                MetricType::Info,
            )?;
            m.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        }
        Ok(())
    }
}

/// Encodes a loss and a p99 family for `edges`.
fn encode_edges(
    enc: &mut DescriptorEncoder,
    prefix: &str,
    what: &str,
    edges: &[EdgeFigure],
) -> Result<(), std::fmt::Error> {
    let label_rows: Vec<[(&str, String); 5]> = edges
        .iter()
        .map(|e| {
            [
                ("src", e.src.to_string()),
                ("src_network", net_label(e.src_network).to_string()),
                ("dst", e.dst.to_string()),
                ("dst_network", net_label(e.dst_network).to_string()),
                ("dst_addr", e.dst_addr.to_string()),
            ]
        })
        .collect();
    {
        let name = format!("{prefix}_loss_ratio");
        let mut m = enc.encode_descriptor(
            &name,
            &format!("Loss over the last minute of {what}, 0..1."),
            None,
            MetricType::Gauge,
        )?;
        for (e, labels) in edges.iter().zip(&label_rows) {
            if let Some(l) = e.loss {
                ConstGauge::new(l).encode(m.encode_family(labels)?)?;
            }
        }
    }
    {
        let name = format!("{prefix}_rtt_p99");
        let mut m = enc.encode_descriptor(
            &name,
            &format!("Recent p99 round-trip time of {what}."),
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (e, labels) in edges.iter().zip(&label_rows) {
            if let Some(p) = e.p99_s {
                ConstGauge::new(p).encode(m.encode_family(labels)?)?;
            }
        }
    }
    Ok(())
}

fn encode_process(enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let p = crate::process::read();
    if let Some(v) = p.cpu_seconds {
        let c = ConstCounter::new(v);
        c.encode(enc.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent.",
            Some(&Unit::Seconds),
            c.metric_type(),
        )?)?;
    }
    let gauges: [(&str, &str, Option<&Unit>, Option<f64>); 6] = [
        (
            "process_resident_memory",
            "Resident memory size.",
            Some(&Unit::Bytes),
            p.resident_bytes.map(|v| v as f64),
        ),
        (
            "process_virtual_memory",
            "Virtual memory size.",
            Some(&Unit::Bytes),
            p.virtual_bytes.map(|v| v as f64),
        ),
        (
            "process_open_fds",
            "Open file descriptors.",
            None,
            p.open_fds.map(|v| v as f64),
        ),
        (
            "process_max_fds",
            "Limit on open file descriptors.",
            None,
            p.max_fds.map(|v| v as f64),
        ),
        (
            "process_threads",
            "OS threads.",
            None,
            p.threads.map(|v| v as f64),
        ),
        (
            "process_start_time",
            "Start time since the Unix epoch.",
            Some(&Unit::Seconds),
            p.start_time_seconds,
        ),
    ];
    for (name, help, unit, v) in gauges {
        if let Some(v) = v {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(name, help, unit, g.metric_type())?)?;
        }
    }
    Ok(())
}

impl Collector for AggregatorCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let started = Instant::now();
        let snap = gather(&self.graph, &self.cfg);
        self.encode_graph(&mut enc, &snap)?;
        self.encode_ingest(&mut enc)?;
        encode_process(&mut enc)?;
        let g = ConstGauge::new(started.elapsed().as_secs_f64());
        g.encode(enc.encode_descriptor(
            "echomesh_metrics_collect",
            "Time this scrape spent walking the graph.",
            Some(&Unit::Seconds),
            g.metric_type(),
        )?)?;
        Ok(())
    }
}

/// The `/metrics` registry of the aggregator (cheap to clone).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
}

/// The two text formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (what Prometheus asks for first).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (what `promtool check metrics` and curl get).
    PrometheusText,
}

impl Format {
    /// Chooses the format from an `Accept` header.
    #[must_use]
    pub fn from_accept(accept: Option<&str>) -> Self {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }

    /// The `Content-Type` of this format.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

impl Metrics {
    /// Metrics over `graph` and `ingest`.
    #[must_use]
    pub fn new(graph: Arc<Graph>, ingest: Ingest, cfg: MetricsConfig) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(AggregatorCollector::new(graph, ingest, cfg)));
        Self {
            registry: Arc::new(registry),
        }
    }

    /// One scrape in OpenMetrics text (walks the whole graph: call it off the async runtime).
    #[must_use]
    pub fn render(&self) -> String {
        self.render_as(Format::OpenMetrics)
    }

    /// One scrape in `format`.
    #[must_use]
    pub fn render_as(&self, format: Format) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let r = match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        };
        if let Err(e) = r {
            // Only a formatting bug can get here; say so in the scrape rather than panic.
            out.clear();
            let _ = writeln!(out, "# encoding failed: {e}");
        }
        out
    }
}

/// Counts the samples of an exposition (every line that is not a comment).
#[must_use]
pub fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

#[cfg(test)]
mod tests;
