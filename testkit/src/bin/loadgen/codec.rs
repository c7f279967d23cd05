//! A gRPC codec that sends pre-encoded messages.
//!
//! The load generator must spend its CPU on HTTP/2, not on building messages, or it measures
//! itself instead of the aggregator. So each agent's report is encoded once and only the sequence
//! number is written per message; replies are decoded normally.

use echomesh_proto::v1::AggregatorMessage;
use prost::Message as _;
use prost::bytes::{BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// One outgoing Session message.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    /// An already encoded message, sent as is.
    Raw(Bytes),
    /// A pre-encoded report body (`rest`) behind a freshly written sequence number.
    Report { seq: u64, rest: Bytes },
}

/// The codec: [`Out`] up, [`AggregatorMessage`] down.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawCodec;
/// Writes [`Out`] frames.
#[derive(Debug)]
pub(crate) struct RawEnc;
/// Decodes [`AggregatorMessage`]s.
#[derive(Debug)]
pub(crate) struct MsgDec;

impl Codec for RawCodec {
    type Encode = Out;
    type Decode = AggregatorMessage;
    type Encoder = RawEnc;
    type Decoder = MsgDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> MsgDec {
        MsgDec
    }
}

/// Writes `item` as the protobuf encoding of an `AgentMessage`.
fn write(item: &Out, dst: &mut impl BufMut) {
    match item {
        Out::Raw(b) => dst.put_slice(b),
        Out::Report { seq, rest } => {
            // AgentMessage { report (field 2, len) { seq (field 1, varint), rest... } }
            let inner = 1 + prost::encoding::encoded_len_varint(*seq) + rest.len();
            dst.put_u8(0x12);
            prost::encoding::encode_varint(inner as u64, dst);
            dst.put_u8(0x08);
            prost::encoding::encode_varint(*seq, dst);
            dst.put_slice(rest);
        }
    }
}

impl Encoder for RawEnc {
    type Item = Out;
    type Error = tonic::Status;
    fn encode(&mut self, item: Out, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        write(&item, dst);
        Ok(())
    }
}

impl Decoder for MsgDec {
    type Item = AggregatorMessage;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<AggregatorMessage>, tonic::Status> {
        AggregatorMessage::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
