//! An agent session that sends pre-encoded bytes as its messages.
//!
//! Why: a hostile peer does not build its messages with prost. A message of millions of empty
//! entries costs a few bytes each on the wire but a whole struct each once decoded; building it
//! as a prost struct in the test process would spend that memory here and hide what the
//! aggregator spends. This client writes the bytes as they are and reads the answers as usual.

use bytes::{BufMut as _, Bytes};
use echomesh_proto::v1::{AggregatorMessage, Report, TargetStats};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// Writes each item's bytes unchanged; decodes replies with prost.
#[derive(Debug, Default, Clone, Copy)]
struct RawCodec;

#[derive(Debug, Default, Clone, Copy)]
struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ProstDecoder;

impl Decoder for ProstDecoder {
    type Item = AggregatorMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<AggregatorMessage>, Status> {
        AggregatorMessage::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = AggregatorMessage;
    type Encoder = RawEncoder;
    type Decoder = ProstDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ProstDecoder {
        ProstDecoder
    }
}

/// An open session writing raw `AgentMessage` bytes.
#[derive(Debug)]
pub struct RawAgent {
    tx: mpsc::Sender<Bytes>,
    /// The aggregator's replies.
    pub inbound: Streaming<AggregatorMessage>,
}

impl RawAgent {
    /// Opens `AgentService/Session` on `ch` and sends `first`.
    ///
    /// # Errors
    ///
    /// When the session is refused before it starts.
    pub async fn open(ch: Channel, first: Bytes) -> Result<Self, Status> {
        let (tx, rx) = mpsc::channel(4);
        tx.send(first)
            .await
            .map_err(|_| Status::internal("channel"))?;
        let mut grpc = tonic::client::Grpc::new(ch).max_encoding_message_size(usize::MAX);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static("/echomesh.v1.AgentService/Session");
        let inbound = grpc
            .streaming(tonic::Request::new(ReceiverStream::new(rx)), path, RawCodec)
            .await?
            .into_inner();
        Ok(Self { tx, inbound })
    }

    /// Sends one message's bytes.
    ///
    /// # Panics
    ///
    /// When the session has ended.
    pub async fn send(&self, bytes: Bytes) {
        self.tx.send(bytes).await.expect("session open");
    }

    /// The first error the aggregator answers with, skipping other replies.
    ///
    /// # Panics
    ///
    /// When the stream ends without an error.
    pub async fn wait_error(&mut self) -> Status {
        loop {
            match self.inbound.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended without an error"),
                Err(s) => return s,
            }
        }
    }
}

/// An `AgentMessage { report: Report { seq, generation, targets: [empty; entries] } }`, encoded
/// without building the entries (2 bytes each on the wire).
#[must_use]
pub fn empty_entries_report(seq: u64, generation: u64, entries: usize) -> Bytes {
    let head = Report {
        seq,
        generation,
        ..Report::default()
    }
    .encode_to_vec();
    let entry = {
        let mut one = Vec::new();
        prost::encoding::message::encode(5, &TargetStats::default(), &mut one);
        one
    };
    let report_len = head.len() + entry.len() * entries;
    let mut out = Vec::with_capacity(report_len + 16);
    prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(report_len as u64, &mut out);
    out.put_slice(&head);
    for _ in 0..entries {
        out.put_slice(&entry);
    }
    Bytes::from(out)
}
