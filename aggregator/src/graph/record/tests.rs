//! The store's histogram check agrees with the agent-side type on every reject reason.

use echomesh_proto::v1::{self, EdgeState};
use echomesh_proto::{Histogram, HistogramError};
use prost::Message as _;

use super::*;

/// Decodes `h` from its wire bytes, as a report entry arrives.
fn from_wire(h: &v1::Histogram) -> v1::Histogram {
    v1::Histogram::decode(h.encode_to_vec().as_slice()).expect("decodes")
}

fn wire(indices: &[u32], counts: &[u32], sum_ns: u64, min_ns: u64, max_ns: u64) -> v1::Histogram {
    v1::Histogram {
        indices: indices.to_vec(),
        counts: counts.to_vec(),
        sum_ns,
        min_ns,
        max_ns,
    }
}

#[test]
fn both_paths_give_the_same_verdict_for_every_reject_reason() {
    let cases = [
        (
            wire(&[1, 2], &[1], 0, 0, 0),
            HistogramError::LengthMismatch {
                indices: 2,
                counts: 1,
            },
        ),
        (
            wire(&[BUCKETS as u32], &[1], 5, 5, 5),
            HistogramError::IndexOutOfRange(BUCKETS as u32),
        ),
        (
            wire(&[5, 5], &[1, 1], 2, 1, 1),
            HistogramError::NotSorted(5),
        ),
        (
            wire(&[3, 2], &[1, 1], 2, 1, 1),
            HistogramError::NotSorted(2),
        ),
        (wire(&[7], &[0], 0, 0, 0), HistogramError::ZeroCount(7)),
        (
            wire(&[7], &[1], 10, 20, 10),
            HistogramError::Inconsistent("min is greater than max"),
        ),
        (
            wire(&[], &[], 10, 0, 0),
            HistogramError::Inconsistent("empty histogram with a non-zero summary"),
        ),
    ];
    for (h, want) in cases {
        let h = from_wire(&h);
        let agent_side = Histogram::try_from(&h).map(|_| ());
        let store_side = scan_histogram(&h).map(|_| ());
        assert_eq!(agent_side, store_side, "{h:?}");
        assert_eq!(store_side, Err(want), "{h:?}");
    }
    for ok in [wire(&[], &[], 0, 0, 0), wire(&[3, 9], &[2, 1], 30, 5, 15)] {
        let h = from_wire(&ok);
        assert!(Histogram::try_from(&h).is_ok(), "{h:?}");
        assert!(scan_histogram(&h).is_ok(), "{h:?}");
    }
}

#[test]
fn a_refused_entry_leaves_the_record_untouched() {
    let mut rec = EdgeRecord::new(42, 1);
    let ts = v1::TargetStats {
        target_id: 42,
        sent: 10,
        received: 10,
        rtt: Some(wire(&[], &[], 10, 0, 0)),
        ..v1::TargetStats::default()
    };
    assert!(rec.merge(&ts, &Thresholds::default(), 2).is_err());
    assert_eq!(rec.sent_total, 0);
    assert_eq!(rec.state(), EdgeState::Unknown);
}
