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
    assert_eq!(s.down_after, 6);
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

#[test]
fn send_errors_and_sizes_reach_the_wire() {
    use crate::prober::stats::{SendError, SizeCounts};
    let cur = InForce::for_ids(1, &[7], Duration::from_secs(1));
    let mut stats = TargetStats {
        sent: 10,
        lost: 5,
        received: 5,
        send_errors: 2,
        last_send_error: Some(SendError::Os(libc::EMSGSIZE)),
        ..TargetStats::default()
    };
    let w = |stats: TargetStats| TargetWindow {
        id: 7,
        addr: "127.0.0.1".parse().expect("ip"),
        stats,
    };
    let one = target_stats(&w(stats.clone()), &cur).expect("assigned");
    assert_eq!((one.send_errors, one.last_send_errno), (2, libc::EMSGSIZE));
    assert!(one.sizes.is_empty(), "one size: nothing per size");
    stats.sizes = [
        SizeCounts {
            payload: 56,
            sent: 5,
            received: 5,
            ..SizeCounts::default()
        },
        SizeCounts {
            payload: 1372,
            sent: 5,
            lost: 5,
            too_big: 2,
            ..SizeCounts::default()
        },
    ];
    stats.last_send_error = Some(SendError::NoSocket);
    let two = target_stats(&w(stats), &cur).expect("assigned");
    assert_eq!(two.last_send_errno, -1);
    assert_eq!(
        two.sizes
            .iter()
            .map(|s| (s.payload_size, s.sent, s.received, s.lost, s.too_big))
            .collect::<Vec<_>>(),
        [(56, 5, 5, 0, 0), (1372, 5, 0, 5, 2)]
    );
}

#[test]
fn a_second_payload_size_is_alternated() {
    let a = v1::Assignment {
        payload_sizes: vec![56, 1372],
        ..Default::default()
    };
    let (s, _) = engine_input(&a);
    assert_eq!((s.payload_size, s.alt_payload_size), (56, 1372));
    assert_eq!(s.max_payload(), 1372);
}
