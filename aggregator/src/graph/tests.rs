//! The store end to end: assignments, merges, replays, alerts, staleness and pruning.

use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::Histogram;
use echomesh_proto::v1::{self, EdgeState, Network};

use super::*;

fn key(node: &str) -> AgentKey {
    AgentKey {
        node: node.into(),
        network: Network::Pod,
    }
}

fn info(addr: &str) -> AgentInfo {
    AgentInfo {
        addresses: vec![addr.parse().expect("ip")],
        boot_id: 7,
        connected: true,
        ..AgentInfo::default()
    }
}

fn stats(id: u64, slot: u32, sent: u64, lost: u64) -> v1::TargetStats {
    let mut h = Histogram::new();
    for _ in 0..(sent - lost) {
        h.record(Duration::from_micros(300));
    }
    v1::TargetStats {
        target_id: id,
        slot,
        sent,
        received: sent - lost,
        lost,
        rtt: Some(v1::Histogram::from(&h)),
        ..v1::TargetStats::default()
    }
}

fn setup() -> (Graph, Arc<AgentEntry>, u64) {
    let g = Graph::new(GraphConfig::default(), EventHub::new(16, 4));
    let a = g.upsert_agent(key("a"), info("10.0.0.1"));
    g.upsert_agent(key("b"), info("10.0.0.2"));
    let b_id = endpoint_id("b", Network::Pod, "10.0.0.2".parse().expect("ip"));
    g.apply_assignment(&a, 1, &[b_id], Duration::from_secs(1));
    (g, a, b_id)
}

fn report(seq: u64, generation: u64, targets: Vec<v1::TargetStats>) -> v1::Report {
    v1::Report {
        seq,
        generation,
        targets,
        ..v1::Report::default()
    }
}

#[test]
fn record_is_compact() {
    // 176 bytes: a slab of 5000 stays in mimalloc's 896 KiB class, so the store stays under the
    // goal of 200 bytes per edge (docs/aggregator.md, "The graph").
    assert_eq!(std::mem::size_of::<EdgeRecord>(), 176);
}

#[tokio::test]
async fn merge_fills_the_edge() {
    let (g, a, b) = setup();
    let out = g.merge_report(&a, &report(1, 1, vec![stats(b, 0, 100, 0)]));
    assert_eq!(
        out,
        Ok(MergeOutcome::Merged {
            unknown_targets: 0,
            retired: 0,
            invalid: 0
        })
    );
    let rec = a.slab.lock().records[0];
    assert_eq!(rec.state(), EdgeState::Up);
    assert_eq!(rec.sent_total, 100);
    let p50 = rec.rtt_quantile_ns(0.5).expect("samples") / 1000.0;
    assert!((250.0..350.0).contains(&p50), "{p50}");
}

#[tokio::test]
async fn duplicate_reordered_late_and_icmp_totals_are_kept_beside_the_record() {
    let (g, a, b) = setup();
    g.merge_report(&a, &report(1, 1, vec![stats(b, 0, 100, 0)]))
        .expect("merge");
    assert!(
        !a.slab.lock().records[0].has_rare(),
        "a healthy edge has none"
    );
    let mut ts = stats(b, 0, 100, 0);
    ts.duplicates = 2;
    ts.reordered = 3;
    ts.late = 4;
    ts.errors = Some(v1::IcmpErrors {
        time_exceeded: 5,
        ..v1::IcmpErrors::default()
    });
    g.merge_report(&a, &report(2, 1, vec![ts.clone()]))
        .expect("merge");
    g.merge_report(&a, &report(3, 1, vec![ts])).expect("merge");
    assert!(a.slab.lock().records[0].has_rare());
    let r = g.rare.edge(&key("a"), b).expect("rare facts");
    assert_eq!(
        (
            r.duplicates_total,
            r.reordered_total,
            r.late_total,
            r.icmp_errors_total
        ),
        (4, 6, 8, 10)
    );
}

#[tokio::test]
async fn duplicate_sequences_are_idempotent() {
    let (g, a, b) = setup();
    let r = report(1, 1, vec![stats(b, 0, 100, 0)]);
    g.merge_report(&a, &r).expect("merge");
    assert_eq!(g.merge_report(&a, &r), Ok(MergeOutcome::Duplicate));
    assert_eq!(a.slab.lock().records[0].sent_total, 100);
    // A new boot id resets the sequence.
    let mut i = info("10.0.0.1");
    i.boot_id = 8;
    let a2 = g.upsert_agent(key("a"), i);
    assert!(matches!(
        g.merge_report(&a2, &r),
        Ok(MergeOutcome::Merged { .. })
    ));
    assert_eq!(a2.slab.lock().records[0].sent_total, 200);
}

#[tokio::test]
async fn unknown_targets_are_counted_and_ignored() {
    let (g, a, b) = setup();
    let out = g
        .merge_report(
            &a,
            &report(
                1,
                1,
                vec![stats(999, 0, 10, 0), stats(b, 5, 10, 0), stats(b, 0, 10, 0)],
            ),
        )
        .expect("merge");
    assert_eq!(
        out,
        MergeOutcome::Merged {
            unknown_targets: 2,
            retired: 0,
            invalid: 0
        }
    );
    assert_eq!(a.slab.lock().records[0].sent_total, 10);
}

#[tokio::test]
async fn old_generation_reports_map_by_id() {
    let (g, a, b) = setup();
    let c = endpoint_id("c", Network::Pod, "10.0.0.3".parse().expect("ip"));
    g.apply_assignment(&a, 2, &[c, b], Duration::from_secs(1));
    // Measured under generation 1 where b was slot 0.
    g.merge_report(&a, &report(1, 1, vec![stats(b, 0, 10, 0)]))
        .expect("merge");
    let slab = a.slab.lock();
    assert_eq!(slab.records[1].sent_total, 10);
    assert_eq!(slab.records[0].sent_total, 0);
}

#[tokio::test]
async fn old_generation_entries_for_retired_targets_are_not_errors() {
    let (g, a, b) = setup();
    let c = endpoint_id("c", Network::Pod, "10.0.0.3".parse().expect("ip"));
    // Generation 2 drops b: a report still in flight from generation 1 names it.
    g.apply_assignment(&a, 2, &[c], Duration::from_secs(1));
    let out = g
        .merge_report(&a, &report(1, 1, vec![stats(b, 0, 10, 0)]))
        .expect("merge");
    assert_eq!(
        out,
        MergeOutcome::Merged {
            unknown_targets: 0,
            retired: 1,
            invalid: 0
        }
    );
    // The same entry under the current generation is an unknown target.
    let out = g
        .merge_report(&a, &report(2, 2, vec![stats(b, 0, 10, 0)]))
        .expect("merge");
    assert_eq!(
        out,
        MergeOutcome::Merged {
            unknown_targets: 1,
            retired: 0,
            invalid: 0
        }
    );
    // Alerts likewise, by their generation.
    let alert = |generation| v1::Alert {
        target_id: b,
        slot: 0,
        generation,
        reachable: false,
        consecutive_losses: 6,
        at_unix_ms: 0,
    };
    assert!(!g.apply_alert(&a, &alert(1)));
    assert!(!g.apply_alert(&a, &alert(2)));
    assert_eq!(
        g.counters
            .retired_entries
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        g.counters
            .unknown_targets
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn malformed_histogram_is_counted_not_merged() {
    let (g, a, b) = setup();
    let mut s = stats(b, 0, 10, 0);
    s.rtt = Some(v1::Histogram {
        indices: vec![2000],
        counts: vec![1],
        sum_ns: 1,
        min_ns: 1,
        max_ns: 1,
    });
    let out = g.merge_report(&a, &report(1, 1, vec![s])).expect("merge");
    assert_eq!(
        out,
        MergeOutcome::Merged {
            unknown_targets: 0,
            retired: 0,
            invalid: 1
        }
    );
}

#[tokio::test]
async fn sequence_zero_is_refused() {
    let (g, a, _) = setup();
    let e = g.merge_report(&a, &report(0, 1, vec![])).expect_err("zero");
    assert_eq!(
        e.to_string(),
        "report sequence number 0 is invalid (sequences start at 1)"
    );
}

#[tokio::test(start_paused = true)]
async fn silent_agent_goes_unknown_within_three_intervals_and_is_pruned_after_ttl() {
    let (g, a, b) = setup();
    g.merge_report(&a, &report(1, 1, vec![stats(b, 0, 10, 0)]))
        .expect("merge");
    assert_eq!(a.slab.lock().records[0].state(), EdgeState::Up);
    tokio::time::advance(Duration::from_millis(2900)).await;
    g.sweep();
    assert_eq!(a.slab.lock().records[0].state(), EdgeState::Up);
    tokio::time::advance(Duration::from_millis(200)).await;
    g.sweep();
    assert_eq!(a.slab.lock().records[0].state(), EdgeState::Unknown);
    // Disconnected: forgotten after the TTL, and the pinglist must change.
    g.disconnect_agent(&key("a"));
    assert!(!g.sweep());
    tokio::time::advance(Duration::from_secs(601)).await;
    assert!(g.sweep());
    assert!(g.agent(&key("a")).is_none());
    assert!(
        g.endpoint(endpoint_id(
            "a",
            Network::Pod,
            "10.0.0.1".parse().expect("ip")
        ))
        .is_none()
    );
}

#[tokio::test]
async fn alerts_flip_immediately() {
    let (g, a, b) = setup();
    g.merge_report(&a, &report(1, 1, vec![stats(b, 0, 10, 0)]))
        .expect("merge");
    let alert = v1::Alert {
        target_id: b,
        slot: 0,
        generation: 1,
        reachable: false,
        consecutive_losses: 3,
        at_unix_ms: 0,
    };
    assert!(g.apply_alert(&a, &alert));
    assert_eq!(a.slab.lock().records[0].state(), EdgeState::Down);
    assert!(!g.apply_alert(
        &a,
        &v1::Alert {
            target_id: 5,
            ..alert
        }
    ));
}

#[tokio::test]
async fn entries_beyond_the_assignment_are_unknown_not_fatal() {
    // A replay into a fresh aggregator whose first assignment for this agent is still empty.
    let g = Graph::new(GraphConfig::default(), EventHub::new(16, 4));
    let a = g.upsert_agent(key("a"), info("10.0.0.1"));
    g.apply_assignment(&a, 1, &[], Duration::from_secs(1));
    let entries = (0..1000).map(|i| stats(i + 1, i as u32, 10, 0)).collect();
    let out = g.merge_report(&a, &report(5, 77, entries)).expect("merge");
    // Measured under another assignment: retired, not merged.
    assert_eq!(
        out,
        MergeOutcome::Merged {
            unknown_targets: 0,
            retired: 1000,
            invalid: 0
        }
    );
}

#[tokio::test]
async fn a_new_target_address_keeps_the_edge_and_its_history() {
    let (g, a, b) = setup();
    g.merge_report(&a, &report(1, 1, vec![stats(b, 0, 10, 2)]))
        .expect("merge");
    // b's agent restarts in a new pod with a new IP: the same endpoint, the new address.
    g.upsert_agent(key("b"), info("10.0.0.99"));
    let b_new = endpoint_id("b", Network::Pod, "10.0.0.99".parse().expect("ip"));
    assert_eq!(b_new, b);
    let e = g.endpoint(b).expect("endpoint");
    assert_eq!(e.addr.to_string(), "10.0.0.99");
    assert_eq!(g.endpoints_with_addr("10.0.0.2".parse().expect("ip")), []);
    // The next assignment names the same id: the record (totals, loss ring) carries over.
    g.apply_assignment(&a, 2, &[b_new], Duration::from_secs(1));
    g.merge_report(&a, &report(2, 2, vec![stats(b, 0, 10, 0)]))
        .expect("merge");
    let rec = a.slab.lock().records[0];
    assert_eq!(rec.sent_total, 20);
    let lost: u64 = rec.history(g.now()).iter().map(|h| h.2).sum();
    assert_eq!(
        lost, 2,
        "the loss ring kept the loss seen at the old address"
    );
}

#[tokio::test]
async fn one_endpoint_per_family_and_a_dropped_family_is_forgotten() {
    let g = Graph::new(GraphConfig::default(), EventHub::new(16, 4));
    let ip = |s: &str| -> std::net::IpAddr { s.parse().expect("ip") };
    let dual = AgentInfo {
        addresses: vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("fd00::1")],
        ..info("10.0.0.1")
    };
    g.upsert_agent(key("n"), dual);
    let v4 = endpoint_id("n", Network::Pod, ip("10.0.0.1"));
    let v6 = endpoint_id("n", Network::Pod, ip("fd00::1"));
    assert_ne!(v4, v6);
    // The first address of a family is the target; the second of the same family is not.
    assert_eq!(g.endpoint(v4).expect("v4").addr, ip("10.0.0.1"));
    assert_eq!(g.endpoint(v6).expect("v6").addr, ip("fd00::1"));
    assert_eq!(g.endpoints().len(), 2);
    // Announcing IPv4 only forgets the IPv6 endpoint and keeps the IPv4 one.
    g.upsert_agent(key("n"), info("10.0.0.3"));
    assert_eq!(g.endpoint(v4).expect("v4").addr, ip("10.0.0.3"));
    assert!(g.endpoint(v6).is_none());
}

/// A report longer than the lock is held for at once (it yields to waiting readers every
/// `YIELD_EVERY` entries) still merges every entry, in either generation's path, while another
/// thread keeps reading the slab.
#[test]
fn a_long_report_merges_whole_while_readers_take_the_lock() {
    let g = Graph::new(GraphConfig::default(), EventHub::new(16, 4));
    let a = g.upsert_agent(key("a"), info("10.0.0.1"));
    let n = store::YIELD_EVERY * 5 + 3;
    let ids: Vec<u64> = (1..=n as u64).collect();
    g.apply_assignment(&a, 1, &ids, Duration::from_secs(1));
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let seen = a.slab.lock().records.len();
                assert_eq!(seen, n);
            }
        });
        for (seq, generation) in [(1, 1), (2, 0)] {
            let targets = ids
                .iter()
                .enumerate()
                .map(|(slot, &id)| stats(id, slot as u32, 10, 0))
                .collect();
            let out = g
                .merge_report(&a, &report(seq, generation, targets))
                .expect("merges");
            assert_eq!(
                out,
                MergeOutcome::Merged {
                    unknown_targets: 0,
                    retired: 0,
                    invalid: 0
                }
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let slab = a.slab.lock();
    assert!(
        slab.records.iter().all(|r| r.sent_total == 20),
        "every entry merged twice"
    );
}
