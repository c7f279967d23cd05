//! The buffer bound, cumulative acks, and the replay rule on hand-made reports and assignments.

use std::time::Duration;

use echomesh_proto::v1;

use prost::Message as _;

use super::*;

fn rep(seq: u64) -> v1::Report {
    v1::Report {
        seq,
        ..v1::Report::default()
    }
}

#[test]
fn buffer_is_bounded_and_acks_are_cumulative() {
    let mut b = ReplayBuffer::new(3);
    for s in 1..=5 {
        b.push(rep(s));
    }
    assert_eq!(b.dropped(), 2);
    assert_eq!(b.pending().map(|r| r.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(b.after(3).map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);
    b.ack(4);
    assert_eq!(b.pending().map(|r| r.seq).collect::<Vec<_>>(), [5]);
    b.ack(4);
    assert_eq!(b.len(), 1);
    b.ack(9);
    assert!(b.is_empty());
}

#[test]
fn the_buffer_is_bounded_in_bytes_too() {
    let big = |seq: u64| v1::Report {
        seq,
        targets: vec![v1::TargetStats::default(); 100],
        ..v1::Report::default()
    };
    let one = big(1).encoded_len();
    let mut b = ReplayBuffer::new(1000).with_max_bytes(one * 3 + one / 2);
    for s in 1..=10 {
        b.push(big(s));
    }
    assert_eq!(b.len(), 3, "three reports fit in the bytes");
    assert_eq!(b.dropped(), 7);
    assert!(b.bytes() <= one * 3 + one / 2);
    b.ack(10);
    assert_eq!(b.bytes(), 0);
    // A report larger than the whole bound is still kept (alone): the newest window always is.
    let mut tiny = ReplayBuffer::new(10).with_max_bytes(1);
    tiny.push(big(1));
    tiny.push(big(2));
    assert_eq!(tiny.pending().map(|r| r.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(tiny.dropped(), 1);
}

#[test]
fn replay_waits_for_an_assignment_covering_the_buffer_or_the_grace() {
    let entry = |id: u64| v1::TargetStats {
        target_id: id,
        ..v1::TargetStats::default()
    };
    let mut buffer = ReplayBuffer::new(8);
    buffer.push(v1::Report {
        seq: 1,
        targets: vec![entry(10), entry(20)],
        ..v1::Report::default()
    });
    let current = |ids: &[u64]| InForce::for_ids(1, ids, Duration::from_secs(1));
    let early = Duration::from_millis(100);
    // Only peer 10 is back: a replay now would drop the entries for 20.
    assert!(!may_replay(early, &buffer, &current(&[10])));
    // Both are back: replay at once.
    assert!(may_replay(early, &buffer, &current(&[10, 20, 30])));
    // A peer that never returns holds the buffer only for the grace period.
    let grace = replay_grace(Duration::from_secs(1));
    assert_eq!(grace, Duration::from_secs(3));
    assert!(may_replay(grace, &buffer, &current(&[10])));
    // Nothing buffered: nothing to wait for.
    assert!(may_replay(early, &ReplayBuffer::new(1), &current(&[])));
}
