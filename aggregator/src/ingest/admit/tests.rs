use std::sync::Arc;

use echomesh_proto::v1::Network;
use proptest::prelude::*;

use super::*;
use crate::graph::{AgentInfo, AgentKey, EventHub, Graph, GraphConfig};

fn agent(targets: usize) -> (Graph, Arc<AgentEntry>) {
    let g = Graph::new(GraphConfig::default(), EventHub::new(16, 4));
    let a = g.upsert_agent(
        AgentKey {
            node: "a".into(),
            network: Network::Pod,
        },
        AgentInfo {
            addresses: vec!["10.0.0.1".parse().expect("ip")],
            connected: true,
            ..AgentInfo::default()
        },
    );
    let ids: Vec<u64> = (1..=targets as u64).collect();
    g.apply_assignment(&a, 5, &ids, Duration::from_secs(1));
    (g, a)
}

fn entry(id: u64, sent: u64, received: u64, lost: u64) -> v1::TargetStats {
    v1::TargetStats {
        target_id: id,
        slot: (id - 1) as u32,
        sent,
        received,
        lost,
        ..v1::TargetStats::default()
    }
}

fn report(generation: u64, targets: Vec<v1::TargetStats>) -> v1::Report {
    v1::Report {
        seq: 3,
        generation,
        window_ms: 1000,
        targets,
        ..v1::Report::default()
    }
}

fn bounds() -> Bounds {
    // 100 ms probes, 1 s timeout: 11 in flight.
    Bounds::new(&IngestConfig::default())
}

fn refusal(a: &AgentEntry, assigned: bool, r: &v1::Report) -> String {
    admit(&bounds(), a, assigned, r)
        .expect_err("refused")
        .to_string()
}

#[test]
fn real_windows_pass() {
    let (_g, a) = agent(3);
    let r = report(
        5,
        vec![
            entry(1, 10, 10, 0),
            entry(2, 10, 0, 10),
            // Probes sent at the end of the previous window, answered in this one.
            entry(3, 9, 11, 0),
        ],
    );
    assert_eq!(admit(&bounds(), &a, true, &r), Ok(()));
    // A replay from an older, larger assignment is bounded by the replay cap, not today's size.
    let older = report(4, (1..=10).map(|i| entry(i, 10, 10, 0)).collect());
    assert_eq!(admit(&bounds(), &a, true, &older), Ok(()));
}

#[test]
fn forged_reports_are_refused_with_the_reason() {
    let (_g, a) = agent(2);
    assert_eq!(
        refusal(&a, false, &report(5, vec![entry(1, 10, 10, 0)])),
        "report 3 before any Assignment on this session"
    );
    assert_eq!(
        admit(&bounds(), &a, false, &report(5, vec![]))
            .expect_err("refused")
            .status()
            .code(),
        tonic::Code::FailedPrecondition
    );
    assert_eq!(
        refusal(
            &a,
            true,
            &report(5, (1..=3).map(|i| entry(i, 1, 1, 0)).collect())
        ),
        "report 3 has 3 entries, more than its assignment's 2 targets"
    );
    assert_eq!(
        refusal(&a, true, &report(5, vec![entry(1, 770, 20_000_710, 0)])),
        "report 3, target 0000000000000001: sent 770 is more than a 1000 ms window can hold \
         (at most 715)"
    );
    assert_eq!(
        refusal(&a, true, &report(5, vec![entry(1, 100, 20_000_710, 0)])),
        "report 3, target 0000000000000001: received 20000710 + lost 0 exceed sent 100 plus 11 \
         in flight"
    );
    assert_eq!(
        refusal(
            &a,
            true,
            &report(5, vec![entry(1, 10, 0, u64::from(u32::MAX))])
        ),
        "report 3, target 0000000000000001: received 0 + lost 4294967295 exceed sent 10 plus 11 \
         in flight"
    );
    let mut dup = entry(1, 10, 10, 0);
    dup.duplicates = 100_000;
    assert!(refusal(&a, true, &report(5, vec![dup])).contains("duplicates 100000 exceed"));
    let mut late = entry(1, 10, 10, 0);
    late.late = 1000;
    assert!(refusal(&a, true, &report(5, vec![late])).contains("late 1000 exceeds"));
    let mut reordered = entry(1, 10, 5, 5);
    reordered.reordered = 6;
    assert!(refusal(&a, true, &report(5, vec![reordered])).contains("reordered 6 exceeds"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    /// Whatever the counters, the check never panics, and what it admits keeps the loss ratio
    /// within 0..=100 % once the in-flight room is accounted for, and every entry bounded.
    #[test]
    fn admitted_counters_are_bounded(
        entries in proptest::collection::vec(
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), 0u64..200, 0u64..200, 0u64..200),
            0..6,
        ),
        window_ms in any::<u32>(),
        generation in 3u64..8,
        assigned in any::<bool>(),
    ) {
        let (g, a) = agent(4);
        let b = bounds();
        let targets: Vec<v1::TargetStats> = entries
            .iter()
            .enumerate()
            .map(|(i, &(sent, received, lost, dups, late, s, r, l))| {
                // Mix absurd figures with plausible ones.
                let (sent, received, lost) = if i % 2 == 0 { (s, r, l) } else { (sent, received, lost) };
                v1::TargetStats {
                    target_id: i as u64 + 1,
                    slot: i as u32,
                    sent,
                    received,
                    lost,
                    duplicates: dups % 1000,
                    late: late % 100,
                    ..v1::TargetStats::default()
                }
            })
            .collect();
        let r = v1::Report { seq: 1, generation, window_ms, targets, ..v1::Report::default() };
        if admit(&b, &a, assigned, &r).is_ok() {
            // What is admitted merges without panicking, whatever its figures.
            prop_assert!(g.merge_report(&a, &r).is_ok());
            prop_assert!(assigned);
            if generation == 5 {
                prop_assert!(r.targets.len() <= 4);
            }
            for t in &r.targets {
                prop_assert!(t.sent <= b.max_sent(window_ms));
                prop_assert!(t.received + t.lost <= t.sent + 11);
            }
        }
    }
}
