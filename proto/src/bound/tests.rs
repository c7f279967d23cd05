use proptest::prelude::*;
use prost::Message as _;

use super::*;
use crate::v1::{
    AgentMessage, AggregatorMessage, Assignment, Hello, PayloadSizeStats, Report, Target,
    TargetStats, agent_message, aggregator_message,
};

const LIMITS: AgentMessageLimits = AgentMessageLimits {
    report_targets: 3,
    sizes_per_target: 2,
    hello_addresses: 2,
};

fn report(entries: usize, sizes: usize) -> Vec<u8> {
    AgentMessage {
        msg: Some(agent_message::Msg::Report(Report {
            seq: 1,
            generation: 7,
            targets: (0..entries)
                .map(|i| TargetStats {
                    target_id: i as u64,
                    slot: i as u32,
                    sent: 10,
                    sizes: vec![PayloadSizeStats::default(); sizes],
                    ..TargetStats::default()
                })
                .collect(),
            ..Report::default()
        })),
    }
    .encode_to_vec()
}

#[test]
fn a_report_within_the_caps_passes() {
    assert_eq!(check_agent_message(&report(3, 2), &LIMITS), Ok(()));
    assert_eq!(check_agent_message(&report(0, 0), &LIMITS), Ok(()));
    assert_eq!(check_agent_message(&[], &LIMITS), Ok(()));
}

#[test]
fn one_entry_too_many_is_refused_naming_the_field() {
    let e = check_agent_message(&report(4, 0), &LIMITS).expect_err("refused");
    assert_eq!(e.to_string(), "Report.targets carries more than 3 entries");
    let e = check_agent_message(&report(1, 3), &LIMITS).expect_err("refused");
    assert_eq!(
        e.to_string(),
        "TargetStats.sizes carries more than 2 entries"
    );
    let hello = AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello {
            addresses: vec![String::new(); 3],
            ..Hello::default()
        })),
    };
    let e = check_agent_message(&hello.encode_to_vec(), &LIMITS).expect_err("refused");
    assert_eq!(e.to_string(), "Hello.addresses carries more than 2 entries");
}

#[test]
fn entries_add_up_over_repeated_report_fields_which_protobuf_merges() {
    // Two Report fields of two entries each decode as one Report of four.
    let mut two = report(2, 0);
    two.extend(report(2, 0));
    let decoded = AgentMessage::decode(&two[..]).expect("ok");
    let Some(agent_message::Msg::Report(r)) = decoded.msg else {
        panic!("a report")
    };
    assert_eq!(r.targets.len(), 4);
    assert!(matches!(
        check_agent_message(&two, &LIMITS),
        Err(BoundError::TooMany {
            what: "Report.targets",
            ..
        })
    ));
}

#[test]
fn millions_of_empty_entries_are_refused_at_the_cap_without_walking_them_all() {
    // Report { targets: [empty; 2M] } by hand: 0x2a 0x00 per entry.
    let entries = 2_000_000;
    let mut inner = Vec::with_capacity(entries * 2);
    for _ in 0..entries {
        inner.extend_from_slice(&[0x2a, 0x00]);
    }
    let mut msg = vec![0x12];
    prost::encoding::encode_varint(inner.len() as u64, &mut msg);
    msg.extend(inner);
    let limits = AgentMessageLimits {
        report_targets: 10_000,
        ..LIMITS
    };
    assert_eq!(
        check_agent_message(&msg, &limits),
        Err(BoundError::TooMany {
            what: "Report.targets",
            max: 10_000
        })
    );
}

#[test]
fn an_assignment_is_capped_on_its_targets() {
    let a = |n: usize| {
        AggregatorMessage {
            msg: Some(aggregator_message::Msg::Assignment(Assignment {
                targets: vec![Target::default(); n],
                payload_sizes: vec![56, 1372],
                ..Assignment::default()
            })),
        }
        .encode_to_vec()
    };
    assert_eq!(check_aggregator_message(&a(5), 5), Ok(()));
    assert_eq!(
        check_aggregator_message(&a(6), 5)
            .expect_err("refused")
            .to_string(),
        "Assignment.targets carries more than 5 entries"
    );
}

#[test]
fn malformed_bytes_are_refused_with_the_reason() {
    let cases: &[(&[u8], &str)] = &[
        (&[0x08], "malformed protobuf at byte 1: truncated varint"),
        (
            &[0x08, 0x80],
            "malformed protobuf at byte 1: truncated varint",
        ),
        (
            &[0x00, 0x00],
            "malformed protobuf at byte 0: field number out of range",
        ),
        (&[0x0b], "malformed protobuf at byte 0: groups are not used"),
        (&[0x0e], "malformed protobuf at byte 0: invalid wire type"),
        (
            &[0x12, 0x05, 0x00],
            "malformed protobuf at byte 1: length past the end",
        ),
        (
            &[0x09, 0x00, 0x00],
            "malformed protobuf at byte 1: fixed-width value past the end",
        ),
        (
            &[0x0d, 0x00],
            "malformed protobuf at byte 1: fixed-width value past the end",
        ),
        (
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            "malformed protobuf at byte 1: varint longer than 64 bits",
        ),
        // Inside a Report: an entry whose length runs past the report.
        (
            &[0x12, 0x02, 0x2a, 0x05],
            "malformed protobuf at byte 3: length past the end",
        ),
        // A length varint that does not fit usize or the buffer.
        (
            &[
                0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            "malformed protobuf at byte 1: length past the end",
        ),
    ];
    for (bytes, want) in cases {
        let got = check_agent_message(bytes, &LIMITS)
            .expect_err("refused")
            .to_string();
        assert_eq!(&got, want, "{bytes:02x?}");
    }
}

proptest! {
    /// Any bytes: no panic, and whatever passes the walk and decodes holds at most the caps.
    #[test]
    fn arbitrary_bytes_never_panic_and_never_pass_over_the_caps(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let verdict = check_agent_message(&bytes, &LIMITS);
        let _ = check_aggregator_message(&bytes, 3);
        if verdict.is_ok()
            && let Ok(m) = AgentMessage::decode(&bytes[..])
            && let Some(agent_message::Msg::Report(r)) = m.msg
        {
            prop_assert!(r.targets.len() <= LIMITS.report_targets);
            prop_assert!(r.targets.iter().all(|t| t.sizes.len() <= LIMITS.sizes_per_target));
        }
    }

    /// Real reports of any shape: refused exactly when over a cap.
    #[test]
    fn real_reports_are_refused_exactly_over_the_caps(entries in 0usize..6, sizes in 0usize..4) {
        let verdict = check_agent_message(&report(entries, sizes), &LIMITS);
        let over = entries > LIMITS.report_targets || (entries > 0 && sizes > LIMITS.sizes_per_target);
        prop_assert_eq!(verdict.is_err(), over);
    }
}
