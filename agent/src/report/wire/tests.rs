//! Assignments in, reports out: slots, defaults and skipped targets, on hand-made values.

use std::time::Duration;

use echomesh_proto::v1;

use super::*;
use crate::prober::stats::TargetStats;

#[test]
fn stats_of_unassigned_targets_are_not_reported() {
    let cur = InForce::for_ids(3, &[7], Duration::from_secs(1));
    let w = |id| TargetWindow {
        id,
        addr: "127.0.0.1".parse().expect("ip"),
        stats: TargetStats::default(),
    };
    assert_eq!(target_stats(&w(7), &cur).map(|t| t.slot), Some(0));
    assert!(target_stats(&w(8), &cur).is_none());
}

#[test]
fn assignment_becomes_engine_input() {
    let a = v1::Assignment {
        generation: 1,
        targets: vec![
            v1::Target {
                id: 1,
                address: "127.0.0.2".into(),
                ..Default::default()
            },
            v1::Target {
                id: 2,
                address: "garbage".into(),
                ..Default::default()
            },
        ],
        probe_interval_ms: 50,
        timeout_ms: 0,
        payload_sizes: vec![],
        report_interval_ms: 200,
        down_after: 0,
    };
    let (s, t) = engine_input(&a);
    assert_eq!(s.interval, Duration::from_millis(50));
    assert_eq!(s.timeout, Duration::from_secs(1));
    assert_eq!(s.payload_size, 56);
    assert_eq!(s.down_after, 3);
    assert_eq!(t.len(), 1);
    let cur = InForce::new(&a);
    assert_eq!((cur.slot(1), cur.slot(2)), (Some(0), Some(1)));
    assert_eq!(cur.report_interval, Duration::from_millis(200));
}

#[test]
fn report_intervals_below_the_floor_are_raised() {
    let a = v1::Assignment {
        report_interval_ms: 10,
        ..Default::default()
    };
    assert_eq!(InForce::new(&a).report_interval, MIN_REPORT_INTERVAL);
}
