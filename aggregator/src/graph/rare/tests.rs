//! Rare facts from wire entries: every error kind, refused sends, MTU evidence, cleanup; and the
//! merge through the store into the one edge view.

use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::v1::{self, IcmpErrorKind as K, Network};

use super::*;
use crate::graph::{AgentEntry, AgentInfo, EventHub, Graph, GraphConfig, endpoint_id};

fn key(node: &str) -> AgentKey {
    AgentKey {
        node: node.into(),
        network: Network::Pod,
    }
}

/// One error of `kind`, as an agent's wire block carries it.
fn one_error(kind: K) -> v1::IcmpErrors {
    let mut e = v1::IcmpErrors {
        last_kind: kind as i32,
        ..v1::IcmpErrors::default()
    };
    match kind {
        K::NetUnreachable => e.net_unreachable = 1,
        K::HostUnreachable => e.host_unreachable = 1,
        K::ProtocolUnreachable => e.protocol_unreachable = 1,
        K::PortUnreachable => e.port_unreachable = 1,
        K::FragNeeded => {
            e.frag_needed = 1;
            e.last_mtu = 1400;
        }
        K::AdminProhibited => e.admin_prohibited = 1,
        K::TimeExceeded => e.time_exceeded = 1,
        K::ParameterProblem => e.parameter_problem = 1,
        K::Other => e.other = 1,
        K::Unspecified => {}
    }
    if matches!(
        kind,
        K::NetUnreachable
            | K::HostUnreachable
            | K::ProtocolUnreachable
            | K::PortUnreachable
            | K::FragNeeded
            | K::AdminProhibited
    ) {
        e.dest_unreachable = 1;
    }
    e
}

const ALL: [K; 9] = [
    K::NetUnreachable,
    K::HostUnreachable,
    K::ProtocolUnreachable,
    K::PortUnreachable,
    K::FragNeeded,
    K::AdminProhibited,
    K::TimeExceeded,
    K::ParameterProblem,
    K::Other,
];

fn sizes(small: (u64, u64, u64), large: (u64, u64, u64, u64)) -> Vec<v1::PayloadSizeStats> {
    vec![
        v1::PayloadSizeStats {
            payload_size: 56,
            sent: small.0,
            received: small.1,
            lost: small.2,
            too_big: 0,
        },
        v1::PayloadSizeStats {
            payload_size: 1372,
            sent: large.0,
            received: large.1,
            lost: large.2,
            too_big: large.3,
        },
    ]
}

#[test]
fn every_kind_is_counted_per_agent_and_is_the_edges_last() {
    let facts = RareFacts::default();
    let a = key("a");
    for kind in ALL {
        let ts = v1::TargetStats {
            target_id: 9,
            errors: Some(one_error(kind)),
            ..v1::TargetStats::default()
        };
        assert!(worth_noting(&ts), "{kind:?}");
        facts.note(&a, &ts);
        assert_eq!(
            facts.edge(&a, 9).map(|e| e.last_kind),
            Some(kind as i32),
            "{kind:?}"
        );
    }
    let totals = facts.agents();
    assert_eq!(totals.len(), 1);
    for kind in ALL {
        assert_eq!(totals[0].1.icmp[kind as usize], 1, "{kind:?}");
    }
    assert_eq!(facts.edge(&a, 9).map(|e| e.last_mtu), Some(1400));
}

#[test]
fn an_agent_sending_only_the_classic_totals_counts_as_other() {
    let facts = RareFacts::default();
    let ts = v1::TargetStats {
        target_id: 9,
        errors: Some(v1::IcmpErrors {
            dest_unreachable: 3,
            ..v1::IcmpErrors::default()
        }),
        ..v1::TargetStats::default()
    };
    facts.note(&key("a"), &ts);
    assert_eq!(facts.agents()[0].1.icmp[K::Other as usize], 3);
    assert_eq!(
        facts.edge(&key("a"), 9).map(|e| e.last_kind),
        Some(K::Other as i32)
    );
}

#[test]
fn a_healthy_entry_is_not_worth_noting() {
    let ts = v1::TargetStats {
        sent: 10,
        received: 10,
        errors: Some(v1::IcmpErrors::default()),
        sizes: sizes((5, 5, 0), (5, 5, 0, 0)),
        ..v1::TargetStats::default()
    };
    assert!(!worth_noting(&ts));
    assert_eq!(judge_sizes(&ts), (MtuEvidence::Passes, 10, 0));
}

#[test]
fn sizes_tell_a_black_hole_from_a_dead_link() {
    let hole = v1::TargetStats {
        sent: 10,
        received: 5,
        lost: 5,
        sizes: sizes((5, 5, 0), (5, 0, 5, 0)),
        ..v1::TargetStats::default()
    };
    assert_eq!(large_failing(&hole), Some(1372));
    assert_eq!(judge_sizes(&hole), (MtuEvidence::BlackHole, 5, 0));
    let refused = v1::TargetStats {
        sizes: sizes((5, 5, 0), (5, 0, 0, 5)),
        ..hole.clone()
    };
    assert_eq!(large_failing(&refused), Some(1372), "frag-needed answers");
    let dead = v1::TargetStats {
        sent: 10,
        lost: 10,
        sizes: sizes((5, 0, 5), (5, 0, 5, 0)),
        ..v1::TargetStats::default()
    };
    assert_eq!(
        large_failing(&dead),
        None,
        "nothing passes: not an MTU problem"
    );
    assert_eq!(judge_sizes(&dead), (MtuEvidence::None, 10, 10));
    let one_size = v1::TargetStats {
        sent: 10,
        received: 10,
        ..v1::TargetStats::default()
    };
    assert_eq!(judge_sizes(&one_size), (MtuEvidence::None, 10, 0));
}

#[test]
fn refused_sends_add_up_and_cleanup_forgets() {
    let facts = RareFacts::default();
    let ts = v1::TargetStats {
        target_id: 9,
        send_errors: 4,
        last_send_errno: 90,
        ..v1::TargetStats::default()
    };
    facts.note(&key("a"), &ts);
    facts.note(&key("a"), &ts);
    facts.note(&key("b"), &ts);
    assert_eq!(
        facts.edge(&key("a"), 9).map(|e| e.send_errors_total),
        Some(8)
    );
    facts.retain_targets(&key("a"), &[10]);
    assert_eq!(facts.edge(&key("a"), 9), None);
    assert!(
        facts.edge(&key("b"), 9).is_some(),
        "another agent's edge stays"
    );
    facts.remove_agent(&key("b"));
    assert_eq!(facts.edge(&key("b"), 9), None);
    assert_eq!(facts.agents().len(), 1);
}

fn setup() -> (Graph, Arc<AgentEntry>, u64) {
    let g = Graph::new(GraphConfig::default(), EventHub::new(16, 4));
    let info = |addr: &str| AgentInfo {
        addresses: vec![addr.parse().expect("ip")],
        boot_id: 7,
        connected: true,
        ..AgentInfo::default()
    };
    let a = g.upsert_agent(key("a"), info("10.0.0.1"));
    g.upsert_agent(key("b"), info("10.0.0.2"));
    let b = endpoint_id("b", Network::Pod, "10.0.0.2".parse().expect("ip"));
    g.apply_assignment(&a, 1, &[b], Duration::from_secs(1));
    (g, a, b)
}

fn report(seq: u64, ts: v1::TargetStats) -> v1::Report {
    v1::Report {
        seq,
        generation: 1,
        window_ms: 1000,
        targets: vec![ts],
        ..v1::Report::default()
    }
}

#[tokio::test]
async fn every_kind_merges_into_the_edge_view() {
    let (g, a, b) = setup();
    for (seq, kind) in (1..).zip(ALL) {
        let ts = v1::TargetStats {
            target_id: b,
            sent: 10,
            received: 10,
            errors: Some(one_error(kind)),
            ..v1::TargetStats::default()
        };
        g.merge_report(&a, &report(seq, ts)).expect("merged");
        let rec = a.slab.lock().records[0];
        let e =
            crate::api::view::edge(&g, &a.key, &rec, g.now(), crate::api::view::Detail::Summary);
        assert_eq!(e.last_icmp_error, kind as i32, "{kind:?}");
        assert_eq!(
            e.icmp_errors_total, seq,
            "{kind:?}: every kind counts in the total"
        );
    }
    let rec = a.slab.lock().records[0];
    let e = crate::api::view::edge(&g, &a.key, &rec, g.now(), crate::api::view::Detail::Summary);
    assert_eq!(e.last_mtu, 1400);
    assert_eq!(e.mtu_blackhole_payload, 0);
}

#[tokio::test]
async fn an_mtu_black_hole_is_marked_with_its_size_and_the_edge_stays_up() {
    let (g, a, b) = setup();
    let hole = |seq| {
        report(
            seq,
            v1::TargetStats {
                target_id: b,
                sent: 10,
                received: 5,
                lost: 5,
                sizes: sizes((5, 5, 0), (5, 0, 5, 0)),
                ..v1::TargetStats::default()
            },
        )
    };
    let view = |g: &Graph| {
        let rec = a.slab.lock().records[0];
        crate::api::view::edge(g, &a.key, &rec, g.now(), crate::api::view::Detail::Summary)
    };
    g.merge_report(&a, &hole(1)).expect("merged");
    assert_eq!(
        view(&g).mtu_blackhole_payload,
        0,
        "one window is not enough"
    );
    for seq in 2..=4 {
        g.merge_report(&a, &hole(seq)).expect("merged");
    }
    let e = view(&g);
    assert_eq!(e.mtu_blackhole_payload, 1372);
    assert_eq!(
        e.state,
        v1::EdgeState::Up as i32,
        "judged on the small probes"
    );
    for seq in 5..=7 {
        let ok = v1::TargetStats {
            target_id: b,
            sent: 10,
            received: 10,
            sizes: sizes((5, 5, 0), (5, 5, 0, 0)),
            ..v1::TargetStats::default()
        };
        g.merge_report(&a, &report(seq, ok)).expect("merged");
    }
    assert_eq!(view(&g).mtu_blackhole_payload, 0, "cleared");
}
