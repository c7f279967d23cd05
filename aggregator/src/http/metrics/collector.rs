//! The `/metrics` collector: what one scrape encodes, in which families.
//!
//! Why bounded: an n-node cluster has n² edges, so what is always exported is linear in nodes
//! (per node and direction a loss ratio and an RTT histogram), plus the top-K worst edges and,
//! only when enabled, per-edge series capped at a fixed count.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use echomesh_proto::v1::Network;
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use super::MetricsConfig;
use super::cumulative::Cumulative;
use super::process::encode_process;
use super::snapshot::{Direction, EdgeFigure, Group, GroupKey, Snapshot, gather};
use crate::graph::Graph;
use crate::ingest::Ingest;

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
    verdicts: crate::diagnose::Verdicts,
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
            verdicts: crate::diagnose::Verdicts::default(),
        }
    }

    /// Reads the diagnosis from `verdicts` (shared with the other readers).
    #[must_use]
    pub fn with_verdicts(mut self, verdicts: crate::diagnose::Verdicts) -> Self {
        self.verdicts = verdicts;
        self
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
            let g = ConstGauge::new(snap.expected_down_edges as i64);
            g.encode(enc.encode_descriptor(
                "echomesh_expected_down_edges",
                "Edges towards expected-down nodes (cordoned, drained, being deleted), left out of \
                 the per-node, top and per-edge series.",
                None,
                g.metric_type(),
            )?)?;
        }
        {
            // Always described, even with no sample, so the rules that read it always find it.
            let mut m = enc.encode_descriptor(
                "echomesh_node_expected_down",
                "1 for each node whose outage is planned (cordoned, drained or being deleted); \
                 no sample for other nodes.",
                None,
                MetricType::Gauge,
            )?;
            for node in &snap.expected_down_nodes {
                ConstGauge::new(1i64).encode(m.encode_family(&[("node", &**node)])?)?;
            }
        }
        let (shown, omitted) = shown_nodes(snap, self.cfg.max_nodes);
        let on = |node: &Arc<str>| shown.as_ref().is_none_or(|s| s.contains(node));
        {
            let g = ConstGauge::new(omitted as i64);
            g.encode(enc.encode_descriptor(
                "echomesh_node_series_omitted",
                "Nodes left out of the per-node series by --metrics-max-nodes (0: none).",
                None,
                g.metric_type(),
            )?)?;
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
                if !on(node) {
                    continue;
                }
                if let Some(l) = g.loss_ratio() {
                    let labels = [
                        ("node", &**node),
                        ("network", Network::name(*net)),
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
                // Every node's counters advance, shown or not, so a node that comes back into
                // the shown set continues its counters instead of restarting them.
                let c = h.nodes.entry(key.clone()).or_default();
                c.advance(g.received, &g.shape);
                if !on(&key.0) {
                    continue;
                }
                let labels = [
                    ("node", &*key.0),
                    ("network", Network::name(key.1)),
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
                    let labels = [("network", Network::name(*net))];
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
                let labels = [("network", Network::name(*net))];
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
                "Agent reports by result: merged; duplicate (a replay already merged); lost (numbered by the agent, never received: gaps in its sequence).",
                None,
                MetricType::Counter,
            )?;
            for (result, v) in [
                ("merged", c.reports_merged.load(Ordering::Relaxed)),
                ("duplicate", c.reports_duplicate.load(Ordering::Relaxed)),
                ("lost", self.ingest.reports_lost()),
            ] {
                let labels = [("result", result)];
                ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
            }
        }
        for (name, help, counter) in [
            (
                "echomesh_edge_updates",
                "Per-target entries of merged reports.",
                &c.edge_updates,
            ),
            (
                "echomesh_report_entries_retired",
                "Report entries and alerts measured under an older pinglist for targets the current one no longer holds (in flight when the list changed; ignored, not an error).",
                &c.retired_entries,
            ),
        ] {
            let v = ConstCounter::new(counter.load(Ordering::Relaxed));
            v.encode(enc.encode_descriptor(name, help, None, v.metric_type())?)?;
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
                "echomesh_agent_auth_failures",
                "Agent sessions refused by authentication or Hello binding, by reason.",
                None,
                MetricType::Counter,
            )?;
            for (reason, v) in self.ingest.auth_failures() {
                let labels = [("reason", reason.label())];
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
                ("src_network", Network::name(e.src_network).to_string()),
                ("dst", e.dst.to_string()),
                ("dst_network", Network::name(e.dst_network).to_string()),
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

impl Collector for AggregatorCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let started = Instant::now();
        let snap = gather(&self.graph, &self.cfg);
        self.encode_graph(&mut enc, &snap)?;
        super::rare::encode(
            &mut enc,
            &self.graph,
            snap.mtu_blackhole_edges,
            &snap.mtu_blackholes,
        )?;
        let verdict = self
            .verdicts
            .get(&self.graph, echomesh_proto::v1::Network::Unspecified);
        super::diagnosis::encode(&mut enc, &verdict.diagnosis)?;
        self.encode_ingest(&mut enc)?;
        super::pinglist::encode(&mut enc, &self.ingest)?;
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

/// The nodes of `snap` with their own series when at most `max` may have them (`None`: all),
/// and how many are left out: the highest loss ratio of any of the node's groups first, then by
/// name.
fn shown_nodes(snap: &Snapshot, max: usize) -> (Option<BTreeSet<Arc<str>>>, usize) {
    if max == 0 {
        return (None, 0);
    }
    let mut worst: BTreeMap<&Arc<str>, f64> = BTreeMap::new();
    for ((node, _, _), g) in &snap.groups {
        let l = g.loss_ratio().unwrap_or(0.0);
        let e = worst.entry(node).or_insert(0.0);
        *e = e.max(l);
    }
    let total = worst.len();
    if total <= max {
        return (None, 0);
    }
    let mut ranked: Vec<(&Arc<str>, f64)> = worst.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let shown = ranked
        .into_iter()
        .take(max)
        .map(|(n, _)| n.clone())
        .collect();
    (Some(shown), total - max)
}
