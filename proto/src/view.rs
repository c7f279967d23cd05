//! How a `v1::Edge` looks as JSON: one rendering for every tool that prints edges as JSON.
//!
//! Why here and not in a front end: the aggregator's JSON API and the CLI's `-o json` show the
//! same edges, and a field renamed or a unit changed in one of them would break scripts written
//! against the other. Names follow [`v1::Network::name`] and [`state_name`]; `WatchEvents` events
//! ([`event_json`]) reuse the edge keys.

use serde_json::{Value, json};

use crate::v1::{self, EdgeState, Network};

/// Lower-case name of an edge state (`up`, `degraded`, `down`, `unknown`; `none` otherwise).
#[must_use]
pub fn state_name(s: i32) -> &'static str {
    match EdgeState::try_from(s) {
        Ok(EdgeState::Up) => "up",
        Ok(EdgeState::Degraded) => "degraded",
        Ok(EdgeState::Down) => "down",
        Ok(EdgeState::Unknown) => "unknown",
        _ => "none",
    }
}

/// The name of a wire network value (`pod`, `host`, `any` for unknown values).
#[must_use]
pub fn network_name(n: i32) -> &'static str {
    Network::try_from(n).unwrap_or(Network::Unspecified).name()
}

/// An edge as JSON (the figures every listing shows).
#[must_use]
pub fn edge_json(e: &v1::Edge) -> Value {
    json!({
        "source_node": e.source_node,
        "source_network": network_name(e.source_network),
        "target_node": e.target_node,
        "target_network": network_name(e.target_network),
        "target_address": e.target_address,
        "target_id": e.target_id.to_string(),
        "state": state_name(e.state),
        "state_age_ms": e.state_age_ms,
        "last_seen_age_ms": e.last_seen_age_ms,
        "loss_10s_pct": e.loss_10s_pct,
        "loss_1m_pct": e.loss_1m_pct,
        "loss_10m_pct": e.loss_10m_pct,
        "p50_us": e.p50_us,
        "p90_us": e.p90_us,
        "p99_us": e.p99_us,
        "p99_10m_us": e.p99_10m_us,
        "sent_total": e.sent_total,
        "received_total": e.received_total,
        "duplicates_total": e.duplicates_total,
        "reordered_total": e.reordered_total,
        "late_total": e.late_total,
        "icmp_errors_total": e.icmp_errors_total,
        "expected_down": e.expected_down,
        "target_node_ready": e.target_node_ready,
        "last_icmp_error": icmp_error_name(e.last_icmp_error),
        "last_mtu": e.last_mtu,
        "send_errors_total": e.send_errors_total,
        "mtu_blackhole_payload": e.mtu_blackhole_payload,
    })
}

/// Lower-case name of an ICMP error kind (`net_unreachable`, `frag_needed`, …; `none` for none):
/// the names of the `kind` label of `echomesh_icmp_errors_total`.
#[must_use]
pub fn icmp_error_name(k: i32) -> &'static str {
    use v1::IcmpErrorKind as K;
    match K::try_from(k) {
        Ok(K::NetUnreachable) => "net_unreachable",
        Ok(K::HostUnreachable) => "host_unreachable",
        Ok(K::ProtocolUnreachable) => "protocol_unreachable",
        Ok(K::PortUnreachable) => "port_unreachable",
        Ok(K::FragNeeded) => "frag_needed",
        Ok(K::AdminProhibited) => "admin_prohibited",
        Ok(K::TimeExceeded) => "time_exceeded",
        Ok(K::ParameterProblem) => "parameter_problem",
        Ok(K::Other) => "other",
        Ok(K::Unspecified) | Err(_) => "none",
    }
}

/// One minute of an edge's history as JSON; `loss_pct` is derived from `sent` and `lost`.
#[must_use]
pub fn minute_json(m: &v1::EdgeMinute) -> Value {
    json!({
        "minutes_ago": m.minutes_ago,
        "sent": m.sent,
        "lost": m.lost,
        "loss_pct": 100.0 * m.lost as f64 / m.sent.max(1) as f64,
        "p99_us": m.p99_us,
    })
}

/// An edge with its detail (as `GetEdge` returns it): [`edge_json`] plus `p999_us` and the
/// per-minute `history`, newest first.
#[must_use]
pub fn edge_detail_json(e: &v1::Edge) -> Value {
    let mut v = edge_json(e);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("p999_us".into(), json!(e.p999_us));
        obj.insert(
            "history".into(),
            Value::Array(e.history.iter().map(minute_json).collect()),
        );
    }
    v
}

/// Lower-case name of an event kind (`edge_state`, `agent_connected`, `snapshot_done`, …;
/// `unknown` otherwise).
#[must_use]
pub fn event_kind_name(k: i32) -> String {
    v1::event::Kind::try_from(k).map_or_else(
        |_| "unknown".into(),
        |k| k.as_str_name().trim_start_matches("KIND_").to_lowercase(),
    )
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC with milliseconds
/// (`2026-01-02T03:04:05.678Z`).
#[must_use]
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// A `WatchEvents` event as one JSON object: the edge keys of [`edge_json`] where they exist
/// (`source_node`, `source_network`, `target_node`, `target_network`, `target_address`,
/// `expected_down`), the states as `from` and `to`, and the time both as `at_unix_ms` and as
/// RFC 3339 UTC (`at`); a counted event (`edge_states`) adds how many `edges` between which
/// `source_zone` and `target_zone`.
#[must_use]
pub fn event_json(ev: &v1::Event) -> Value {
    json!({
        "kind": event_kind_name(ev.kind),
        "at": rfc3339_ms(ev.at_unix_ms),
        "at_unix_ms": ev.at_unix_ms,
        "source_node": ev.source_node,
        "source_network": network_name(ev.source_network),
        "target_node": ev.target_node,
        "target_network": network_name(ev.target_network),
        "target_address": ev.target_address,
        "from": state_name(ev.from),
        "to": state_name(ev.to),
        "expected_down": ev.expected_down,
        "message": ev.message,
        "missed": ev.missed,
        "edges": ev.edges,
        "source_zone": ev.source_zone,
        "target_zone": ev.target_zone,
    })
}

/// Lower-case name of a culprit kind (`node`, `pod-network`, `host-network`, `zone`, `link`,
/// `agent-silent`, `view-stale`; `unknown` otherwise): the names tables and metric labels use.
#[must_use]
pub fn culprit_kind_name(k: i32) -> &'static str {
    match v1::CulpritKind::try_from(k) {
        Ok(v1::CulpritKind::Node) => "node",
        Ok(v1::CulpritKind::PodNetwork) => "pod-network",
        Ok(v1::CulpritKind::HostNetwork) => "host-network",
        Ok(v1::CulpritKind::Zone) => "zone",
        Ok(v1::CulpritKind::Link) => "link",
        Ok(v1::CulpritKind::AgentSilent) => "agent-silent",
        Ok(v1::CulpritKind::ViewStale) => "view-stale",
        _ => "unknown",
    }
}

/// Lower-case name of a direction (`in`, `out`, `both`; `none` otherwise).
#[must_use]
pub fn direction_name(d: i32) -> &'static str {
    match v1::Direction::try_from(d) {
        Ok(v1::Direction::In) => "in",
        Ok(v1::Direction::Out) => "out",
        Ok(v1::Direction::Both) => "both",
        _ => "none",
    }
}

/// One culprit as JSON; `since` is RFC 3339 UTC (empty when unknown).
#[must_use]
pub fn culprit_json(c: &v1::Culprit) -> Value {
    json!({
        "kind": culprit_kind_name(c.kind),
        "node": c.node,
        "target_node": c.target_node,
        "zone": c.zone,
        "network": network_name(c.network),
        "direction": direction_name(c.direction),
        "failing_edges": c.failing_edges,
        "total_edges": c.total_edges,
        "explained_edges": c.explained_edges,
        "confidence": c.confidence,
        "since": if c.since_unix_ms == 0 { String::new() } else { rfc3339_ms(c.since_unix_ms) },
        "since_unix_ms": c.since_unix_ms,
        "agent_silent": c.agent_silent,
        "description": c.description,
    })
}

/// A `Diagnose` reply as JSON.
#[must_use]
pub fn diagnosis_json(d: &v1::DiagnoseResponse) -> Value {
    json!({
        "healthy": d.healthy,
        "summary": d.summary,
        "culprits": d.culprits.iter().map(culprit_json).collect::<Vec<_>>(),
        "culprits_omitted": d.culprits_omitted,
        "nodes": d.nodes,
        "edges": d.edges,
        "edges_up": d.edges_up,
        "failing_edges": d.failing_edges,
        "explained_edges": d.explained_edges,
        "unexplained_edges": d.unexplained_edges,
        "generated_at": rfc3339_ms(d.generated_at_unix_ms),
        "generated_at_unix_ms": d.generated_at_unix_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_detail() {
        assert_eq!(state_name(EdgeState::Degraded as i32), "degraded");
        assert_eq!(state_name(99), "none");
        assert_eq!(network_name(Network::Host as i32), "host");
        assert_eq!(network_name(99), "any");
        let e = v1::Edge {
            source_network: Network::Pod as i32,
            target_id: u64::MAX,
            loss_10s_pct: 20.0,
            p999_us: 12.5,
            history: vec![v1::EdgeMinute {
                minutes_ago: 0,
                sent: 4,
                lost: 1,
                p99_us: None,
            }],
            ..v1::Edge::default()
        };
        let plain = edge_json(&e);
        assert_eq!(plain["source_network"], "pod");
        assert_eq!(plain["target_id"], u64::MAX.to_string());
        assert_eq!(plain["loss_10s_pct"], 20.0);
        assert!(plain.get("history").is_none());
        assert_eq!(plain["target_node_ready"], "");
        let full = edge_detail_json(&e);
        assert_eq!(full["p999_us"], 12.5);
        assert_eq!(full["history"][0]["loss_pct"], 25.0);
        assert!(full["history"][0]["p99_us"].is_null());
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(rfc3339_ms(1_767_323_045_678), "2026-01-02T03:04:05.678Z");
    }

    #[test]
    fn events_share_the_edge_keys() {
        let ev = v1::Event {
            kind: v1::event::Kind::EdgeState as i32,
            at_unix_ms: 1_767_323_045_678,
            source_node: "a".into(),
            source_network: Network::Host as i32,
            target_network: Network::Pod as i32,
            from: EdgeState::Up as i32,
            to: EdgeState::Down as i32,
            ..v1::Event::default()
        };
        let v = event_json(&ev);
        assert_eq!(v["kind"], "edge_state");
        assert_eq!(v["at"], "2026-01-02T03:04:05.678Z");
        assert_eq!(v["source_network"], "host");
        assert_eq!(v["target_network"], "pod");
        assert_eq!(
            (v["from"].as_str(), v["to"].as_str()),
            (Some("up"), Some("down"))
        );
        assert_eq!(event_kind_name(99), "unknown");
    }
}
