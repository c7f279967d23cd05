//! The simulated agents' codec: pre-encoded messages up, decoded replies down with their size.
//!
//! The assignment figure is "bytes on the wire versus bytes of the lists that changed", measured
//! where a real agent would see them, so every reply comes with its encoded length.

use echomesh_proto::v1::AggregatorMessage;
use prost::Message as _;
use prost::bytes::{Buf as _, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// An encoded `AgentMessage`, sent as is.
pub(crate) type Raw = Bytes;

/// A reply and its encoded length in bytes.
#[derive(Debug)]
pub(crate) struct Sized {
    /// The message.
    pub(crate) msg: AggregatorMessage,
    /// Its protobuf length (the gRPC frame adds 5 bytes).
    pub(crate) bytes: usize,
}

/// The codec: [`Raw`] up, [`Sized`] down.
#[derive(Debug, Clone, Default)]
pub(crate) struct SizedCodec;
/// Writes [`Raw`] frames.
#[derive(Debug)]
pub(crate) struct RawEnc;
/// Decodes replies with their size.
#[derive(Debug)]
pub(crate) struct SizedDec;

impl Codec for SizedCodec {
    type Encode = Raw;
    type Decode = Sized;
    type Encoder = RawEnc;
    type Decoder = SizedDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> SizedDec {
        SizedDec
    }
}

impl Encoder for RawEnc {
    type Item = Raw;
    type Error = tonic::Status;
    fn encode(&mut self, item: Raw, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for SizedDec {
    type Item = Sized;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Sized>, tonic::Status> {
        let bytes = src.remaining();
        AggregatorMessage::decode(src)
            .map(|msg| Some(Sized { msg, bytes }))
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}
