//! A black-holed edge and a few ICMP errors, scraped.

use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::v1::{self, Network};

use crate::graph::{AgentInfo, AgentKey, EventHub, Graph, GraphConfig, endpoint_id};
use crate::http::metrics::{Metrics, MetricsConfig};
use crate::ingest::{Ingest, IngestConfig};
use crate::policy::FullMesh;

fn size(payload: u32, sent: u64, received: u64) -> v1::PayloadSizeStats {
    v1::PayloadSizeStats {
        payload_size: payload,
        sent,
        received,
        lost: sent - received,
        too_big: 0,
    }
}

#[tokio::test]
async fn black_holes_and_error_kinds_are_scraped() {
    let graph = Arc::new(Graph::new(GraphConfig::default(), EventHub::new(16, 1)));
    let key = |n: &str| AgentKey {
        node: n.into(),
        network: Network::Pod,
    };
    let info = |a: &str| AgentInfo {
        addresses: vec![a.parse().expect("ip")],
        connected: true,
        ..AgentInfo::default()
    };
    let a = graph.upsert_agent(key("a"), info("10.0.0.1"));
    graph.upsert_agent(key("b"), info("10.0.0.2"));
    let b = endpoint_id("b", Network::Pod, "10.0.0.2".parse().expect("ip"));
    graph.apply_assignment(&a, 1, &[b], Duration::from_secs(1));
    for seq in 1..=3 {
        let ts = v1::TargetStats {
            target_id: b,
            sent: 10,
            received: 5,
            lost: 5,
            errors: Some(v1::IcmpErrors {
                dest_unreachable: 1,
                frag_needed: 1,
                last_mtu: 1000,
                last_kind: v1::IcmpErrorKind::FragNeeded as i32,
                time_exceeded: 2,
                ..v1::IcmpErrors::default()
            }),
            send_errors: 1,
            sizes: vec![size(56, 5, 5), size(1372, 5, 0)],
            ..v1::TargetStats::default()
        };
        let r = v1::Report {
            seq,
            generation: 1,
            window_ms: 1000,
            targets: vec![ts],
            ..v1::Report::default()
        };
        graph.merge_report(&a, &r).expect("merged");
    }
    let ingest = Ingest::new(graph.clone(), IngestConfig::default(), Arc::new(FullMesh));
    let text = Metrics::new(graph.clone(), ingest, MetricsConfig::default()).render();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_string()
    };
    assert!(line("echomesh_mtu_blackhole_edges").ends_with(" 1"));
    let edge = line("echomesh_edge_mtu_blackhole{");
    assert!(edge.contains(r#"payload_bytes="1372""#), "{edge}");
    assert!(
        edge.contains(r#"src="a""#) && edge.contains(r#"dst="b""#),
        "{edge}"
    );
    assert!(line(r#"echomesh_icmp_errors_total{kind="frag_needed"}"#).ends_with(" 3"));
    assert!(line(r#"echomesh_icmp_errors_total{kind="time_exceeded"}"#).ends_with(" 6"));
    assert!(line(r#"echomesh_icmp_errors_total{kind="parameter_problem"}"#).ends_with(" 0"));
    assert!(line("echomesh_send_errors_total").ends_with(" 3"));
}
