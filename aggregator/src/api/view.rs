//! The one place an edge record becomes a `v1::Edge`.
//!
//! Why one place: ListEdges, GetEdge, the WatchEvents snapshot and (through GetEdge) the JSON API
//! all show edges; if each rendered records itself, units, rounding and the "never seen" cases
//! would drift apart. Readers choose how much to pay: the two-minute history is only built for a
//! single edge.

use echomesh_proto::v1;

use crate::graph::sketch::Tick;
use crate::graph::{AgentKey, EdgeRecord, Graph};

/// How much of an edge to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The figures every listing shows.
    Summary,
    /// Also the p99.9 and the two-minute history (GetEdge).
    Full,
}

/// Nanoseconds to microseconds, 0 when there is no sample.
fn us(ns: Option<f64>) -> f64 {
    ns.map_or(0.0, |v| v / 1000.0)
}

/// Renders `rec`, an edge of agent `src`, as of graph time `now`.
#[must_use]
pub fn edge(
    graph: &Graph,
    src: &AgentKey,
    rec: &EdgeRecord,
    now: Tick,
    detail: Detail,
) -> v1::Edge {
    let ep = graph.endpoint(rec.target_id);
    let mut e = v1::Edge {
        source_node: src.node.to_string(),
        source_network: src.network as i32,
        target_node: ep.as_ref().map(|e| e.node.to_string()).unwrap_or_default(),
        target_network: ep.as_ref().map_or(0, |e| e.network as i32),
        target_address: ep.as_ref().map(|e| e.addr.to_string()).unwrap_or_default(),
        target_id: rec.target_id,
        state: rec.state() as i32,
        state_age_ms: Graph::age_ms(now, rec.state_since),
        last_seen_age_ms: if rec.last_seen == 0 && rec.sent_total == 0 {
            0
        } else {
            Graph::age_ms(now, rec.last_seen)
        },
        loss_10s_pct: rec.loss_10s_pct(now).unwrap_or(0.0),
        loss_1m_pct: rec.loss_1m_pct(now).unwrap_or(0.0),
        loss_10m_pct: rec.loss_10m_pct(now).unwrap_or(0.0),
        p50_us: us(rec.rtt_quantile_ns(0.5)),
        p90_us: us(rec.rtt_quantile_ns(0.9)),
        p99_us: us(rec.rtt_quantile_ns(0.99)),
        p99_10m_us: us(rec.p99_10m_ns(now)),
        sent_total: u64::from(rec.sent_total),
        received_total: u64::from(rec.received_total),
        expected_down: ep.as_ref().is_some_and(|e| graph.is_expected_down(&e.node)),
        target_node_ready: ep
            .as_ref()
            .and_then(|e| graph.not_ready(&e.node))
            .map(|r| r.to_string())
            .unwrap_or_default(),
        ..v1::Edge::default()
    };
    if rec.has_rare()
        && let Some(r) = graph.rare.edge(src, rec.target_id)
    {
        e.last_icmp_error = r.last_kind;
        e.last_mtu = r.last_mtu;
        e.send_errors_total = r.send_errors_total;
        e.duplicates_total = r.duplicates_total;
        e.reordered_total = r.reordered_total;
        e.late_total = r.late_total;
        e.icmp_errors_total = r.icmp_errors_total;
        if rec.mtu_blackhole() {
            e.mtu_blackhole_payload = r.failing_payload;
        }
    }
    if detail == Detail::Full {
        e.p999_us = us(rec.rtt_quantile_ns(0.999));
        e.history = rec
            .history(now)
            .into_iter()
            .map(|(minutes_ago, sent, lost, p99)| v1::EdgeMinute {
                minutes_ago,
                sent,
                lost,
                p99_us: p99.map(|ns| ns / 1000.0),
            })
            .collect();
    }
    e
}
