use super::*;
use proptest::prelude::*;

/// prost's decode.
fn reference(bytes: &[u8]) -> Result<v1::Report, prost::DecodeError> {
    v1::Report::decode(bytes)
}

fn hist(indices: Vec<u32>) -> v1::Histogram {
    let counts = vec![2; indices.len()];
    v1::Histogram {
        indices,
        counts,
        sum_ns: 1_000,
        min_ns: 10,
        max_ns: 900,
    }
}

fn entry(i: u64, rtt: Option<v1::Histogram>) -> v1::TargetStats {
    v1::TargetStats {
        target_id: 0x1000 + i,
        slot: i as u32,
        sent: 10,
        received: 9,
        lost: 1,
        rtt,
        ..v1::TargetStats::default()
    }
}

/// Every field of a Report, named: a field added to the message does not compile here, which is
/// the reminder that [`ReportBuf`] reads Report fields by hand (an unknown one takes the slow path).
fn full_report() -> v1::Report {
    v1::Report {
        seq: u64::MAX,
        generation: 1 << 40,
        window_start_unix_ms: 1_700_000_000_000,
        window_ms: 1000,
        targets: vec![
            v1::TargetStats {
                target_id: u64::MAX,
                slot: 3,
                sent: 20,
                received: 12,
                lost: 8,
                duplicates: 1,
                reordered: 2,
                late: 3,
                errors: Some(v1::IcmpErrors {
                    dest_unreachable: 1,
                    frag_needed: 4,
                    last_mtu: 1400,
                    ..v1::IcmpErrors::default()
                }),
                rtt: Some(hist(vec![300, 310, 500])),
                send_errors: 2,
                last_send_errno: -1,
                sizes: vec![
                    v1::PayloadSizeStats {
                        payload_size: 56,
                        sent: 10,
                        received: 10,
                        ..v1::PayloadSizeStats::default()
                    },
                    v1::PayloadSizeStats {
                        payload_size: 1372,
                        sent: 10,
                        lost: 8,
                        too_big: 8,
                        ..v1::PayloadSizeStats::default()
                    },
                ],
            },
            entry(1, None),
        ],
    }
}

#[test]
fn decodes_every_field_as_prost_does() {
    let bytes = full_report().encode_to_vec();
    let mut buf = ReportBuf::default();
    assert_eq!(buf.decode(&bytes).expect("decodes"), &full_report());
}

#[test]
fn a_reused_buffer_forgets_the_previous_report() {
    let mut buf = ReportBuf::default();
    let big = v1::Report {
        seq: 1,
        generation: 5,
        targets: (0..50).map(|i| entry(i, Some(hist(vec![400])))).collect(),
        ..v1::Report::default()
    };
    buf.decode(&big.encode_to_vec()).expect("decodes");
    // Fewer entries, some without histograms, a histogram shorter than before, no generation.
    let small = v1::Report {
        seq: 2,
        targets: vec![
            entry(7, None),
            entry(8, Some(hist(vec![1]))),
            entry(9, Some(v1::Histogram::default())),
        ],
        ..v1::Report::default()
    };
    let bytes = small.encode_to_vec();
    assert_eq!(
        buf.decode(&bytes).expect("decodes"),
        &reference(&bytes).expect("prost decodes")
    );
    // And back to a larger one: histograms come back from the spares.
    let bytes = big.encode_to_vec();
    assert_eq!(buf.decode(&bytes).expect("decodes"), &big);
}

#[test]
fn an_unknown_report_field_is_decoded_by_prost() {
    let mut bytes = v1::Report {
        seq: 3,
        targets: vec![entry(0, None)],
        ..v1::Report::default()
    }
    .encode_to_vec();
    // Field 15, varint: a field this build does not know; prost skips it.
    bytes.extend_from_slice(&[15 << 3, 42]);
    let mut buf = ReportBuf::default();
    assert_eq!(
        buf.decode(&bytes).expect("decodes"),
        &reference(&bytes).expect("prost decodes")
    );
}

#[test]
fn malformed_bytes_are_refused_with_prosts_reason() {
    let mut buf = ReportBuf::default();
    for bad in [
        &[0x2a, 0x05, 0x09][..], // an entry longer than the message
        &[0x08][..],             // a truncated varint
        &[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ][..], // beyond u64
        &[0x2a, 0x02, 0x09, 0x01][..], // an entry with a truncated fixed64
        &[0x0b][..],             // a group
    ] {
        let want = v1::Report::decode(bad).expect_err("prost refuses it");
        let got = buf.decode(bad).expect_err("refused");
        assert_eq!(got.to_string(), want.to_string(), "{bad:02x?}");
    }
}

#[test]
fn the_pool_lends_and_keeps_a_few_buffers() {
    let pool = ReportPool::default();
    let bytes = full_report().encode_to_vec();
    let seq = pool.with(|b| b.decode(&bytes).map(|r| r.seq));
    assert_eq!(seq.expect("decodes"), u64::MAX);
    assert_eq!(pool.bufs.lock().len(), 1);
}

fn arb_hist() -> impl Strategy<Value = Option<v1::Histogram>> {
    prop::option::of(
        (
            prop::collection::vec(any::<u32>(), 0..6),
            prop::collection::vec(any::<u32>(), 0..6),
            any::<u64>(),
        )
            .prop_map(|(indices, counts, sum_ns)| v1::Histogram {
                indices,
                counts,
                sum_ns,
                min_ns: sum_ns / 3,
                max_ns: sum_ns / 2,
            }),
    )
}

fn arb_entry() -> impl Strategy<Value = v1::TargetStats> {
    (
        any::<u64>(),
        any::<u32>(),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        arb_hist(),
        prop::option::of(any::<u64>()),
        prop::collection::vec((any::<u32>(), any::<u64>()), 0..3),
    )
        .prop_map(
            |(target_id, slot, (sent, received, lost), rtt, err, sizes)| v1::TargetStats {
                target_id,
                slot,
                sent,
                received,
                lost,
                rtt,
                errors: err.map(|n| v1::IcmpErrors {
                    other: n,
                    ..v1::IcmpErrors::default()
                }),
                sizes: sizes
                    .into_iter()
                    .map(|(payload_size, sent)| v1::PayloadSizeStats {
                        payload_size,
                        sent,
                        ..v1::PayloadSizeStats::default()
                    })
                    .collect(),
                ..v1::TargetStats::default()
            },
        )
}

fn arb_report() -> impl Strategy<Value = v1::Report> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        prop::collection::vec(arb_entry(), 0..8),
    )
        .prop_map(|(seq, generation, window_ms, targets)| v1::Report {
            seq,
            generation,
            window_start_unix_ms: seq / 7,
            window_ms,
            targets,
        })
}

proptest! {
    /// One buffer over a sequence of reports gives prost's decode of each.
    #[test]
    fn a_buffer_decodes_any_sequence_of_reports_as_prost(reports in prop::collection::vec(arb_report(), 1..5)) {
        let mut buf = ReportBuf::default();
        for r in &reports {
            let bytes = r.encode_to_vec();
            prop_assert_eq!(buf.decode(&bytes).expect("decodes"), &reference(&bytes).expect("prost decodes"));
        }
    }

    /// Arbitrary bytes (or a valid report cut or altered anywhere): the same result as prost.
    #[test]
    fn any_bytes_decode_or_fail_as_with_prost(
        r in arb_report(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        xor in 1u8..,
        noise in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut buf = ReportBuf::default();
        let mut bytes = r.encode_to_vec();
        if !bytes.is_empty() {
            let i = flip.index(bytes.len());
            bytes[i] ^= xor;
            bytes.truncate(cut.index(bytes.len()) + 1);
        }
        for b in [bytes, noise] {
            match (buf.decode(&b), reference(&b)) {
                (Ok(got), Ok(want)) => prop_assert_eq!(got, &want),
                (Err(got), Err(want)) => prop_assert_eq!(got.to_string(), want.to_string()),
                (got, want) => prop_assert!(false, "{:02x?}: fast {:?}, prost {:?}", b, got.map(|_| ()), want.map(|_| ())),
            }
        }
    }
}
