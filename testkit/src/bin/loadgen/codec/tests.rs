//! The hand-written framing must decode to exactly the report prost would have sent, or the
//! benchmark measures a protocol the aggregator never sees.

use echomesh_proto::v1::{self, AgentMessage, agent_message};
use prost::Message as _;

use super::{Out, write};

#[test]
fn a_pre_encoded_report_decodes_to_the_report_with_the_new_sequence_number() {
    let report = v1::Report {
        seq: 0,
        generation: 7,
        window_start_unix_ms: 0,
        window_ms: 1000,
        targets: vec![v1::TargetStats {
            target_id: 42,
            slot: 3,
            sent: 10,
            received: 9,
            lost: 1,
            ..v1::TargetStats::default()
        }],
    };
    for seq in [1u64, 127, 128, 300_000, u64::MAX] {
        let mut wire = Vec::new();
        write(
            &Out::Report {
                seq,
                rest: report.encode_to_vec().into(),
            },
            &mut wire,
        );
        let got = AgentMessage::decode(wire.as_slice()).expect("decodes");
        let want = v1::Report {
            seq,
            ..report.clone()
        };
        assert_eq!(got.msg, Some(agent_message::Msg::Report(want)), "seq {seq}");
    }
}

#[test]
fn raw_messages_pass_through() {
    let hello = AgentMessage {
        msg: Some(agent_message::Msg::Hello(v1::Hello::default())),
    };
    let bytes = hello.encode_to_vec();
    let mut wire = Vec::new();
    write(&Out::Raw(bytes.clone().into()), &mut wire);
    assert_eq!(wire, bytes);
}
