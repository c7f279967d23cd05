//! The `AgentService.Session` route with a codec that leaves Reports as bytes.
//!
//! Why not the generated server alone: its codec decodes every message into fresh heap values
//! before the session sees it, and for Reports that decode cost more than everything the graph
//! does with them. This route is the generated one with another codec: a message that is just a
//! Report arrives as [`Inbound::Report`], its bytes, which the session decodes into reused buffers
//! ([`super::decode`]); every other message arrives decoded, as before. Other paths of the service
//! go to the generated server, and `Ingest` still implements the generated trait (for in-memory
//! tests), feeding the same session loop.

use std::convert::Infallible;
use std::task::{Context, Poll};

use echomesh_proto::v1::{self, agent_service_server::AgentServiceServer};
use prost::Message as _;
use prost::bytes::{Buf as _, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::{Status, Streaming};

use super::Ingest;
use super::session::SessionStream;

/// The route of the one RPC.
const SESSION_PATH: &str = "/echomesh.v1.AgentService/Session";
/// `AgentMessage.report`'s key: field 2, length-delimited.
const REPORT_KEY: u8 = 0x12;

/// One message from an agent.
#[derive(Debug)]
pub enum Inbound {
    /// An `AgentMessage` that is only a Report: the Report's encoded bytes.
    Report(Bytes),
    /// Any other message, decoded.
    Message(v1::AgentMessage),
}

/// [`Inbound`] up, `AggregatorMessage` down.
#[derive(Debug, Clone, Copy, Default)]
pub struct InboundCodec;

/// Decodes [`Inbound`]s.
#[derive(Debug)]
pub struct InboundDecoder;

/// Encodes `AggregatorMessage`s.
#[derive(Debug)]
pub struct OutboundEncoder;

impl Codec for InboundCodec {
    type Encode = v1::AggregatorMessage;
    type Decode = Inbound;
    type Encoder = OutboundEncoder;
    type Decoder = InboundDecoder;
    fn encoder(&mut self) -> OutboundEncoder {
        OutboundEncoder
    }
    fn decoder(&mut self) -> InboundDecoder {
        InboundDecoder
    }
}

impl Encoder for OutboundEncoder {
    type Item = v1::AggregatorMessage;
    type Error = Status;
    fn encode(
        &mut self,
        item: v1::AggregatorMessage,
        dst: &mut EncodeBuf<'_>,
    ) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode a reply: {e}")))
    }
}

impl Decoder for InboundDecoder {
    type Item = Inbound;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Inbound>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        if let Some(start) = sole_report(&bytes) {
            return Ok(Some(Inbound::Report(bytes.slice(start..))));
        }
        // As tonic's own prost codec reports undecodable bytes.
        v1::AgentMessage::decode(bytes)
            .map(|m| Some(Inbound::Message(m)))
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// Where the Report starts when `m` is an `AgentMessage` holding only a Report.
fn sole_report(m: &[u8]) -> Option<usize> {
    let (&key, mut rest) = m.split_first()?;
    if key != REPORT_KEY {
        return None;
    }
    let mut len = 0usize;
    for i in 0..5 {
        let (&b, r) = rest.split_first()?;
        rest = r;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return (len == rest.len()).then_some(m.len() - rest.len());
        }
    }
    None
}

/// The agent service with the Session route above.
#[derive(Debug, Clone)]
pub struct AgentServer {
    ingest: Ingest,
    max_decoding: usize,
    generated: AgentServiceServer<Ingest>,
}

impl AgentServer {
    /// Serves `ingest`; messages over `max_decoding` bytes are refused as the generated server
    /// refuses them.
    #[must_use]
    pub fn new(ingest: Ingest, max_decoding: usize) -> Self {
        Self {
            generated: AgentServiceServer::new(ingest.clone())
                .max_decoding_message_size(max_decoding),
            ingest,
            max_decoding,
        }
    }
}

impl tonic::server::NamedService for AgentServer {
    const NAME: &'static str = v1::agent_service_server::SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for AgentServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != SESSION_PATH {
            return self.generated.call(req);
        }
        let (ingest, max) = (self.ingest.clone(), self.max_decoding);
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(InboundCodec)
                .apply_max_message_size_config(Some(max), None);
            Ok(grpc.streaming(SessionMethod(ingest), req).await)
        })
    }
}

/// The Session method over [`Inbound`] messages.
struct SessionMethod(Ingest);

impl tonic::server::StreamingService<Inbound> for SessionMethod {
    type Response = v1::AggregatorMessage;
    type ResponseStream = SessionStream;
    type Future = BoxFuture<tonic::Response<SessionStream>, Status>;

    fn call(&mut self, request: tonic::Request<Streaming<Inbound>>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move { Ok(ingest.open_session(request)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(m: &v1::AgentMessage) -> Vec<u8> {
        m.encode_to_vec()
    }

    #[test]
    fn a_message_that_is_only_a_report_is_found() {
        let report = v1::Report {
            seq: 7,
            targets: vec![v1::TargetStats::default(); 300],
            ..v1::Report::default()
        };
        let m = message(&v1::AgentMessage {
            msg: Some(v1::agent_message::Msg::Report(report.clone())),
        });
        let start = sole_report(&m).expect("a report");
        assert_eq!(&m[start..], report.encode_to_vec().as_slice());
    }

    #[test]
    fn anything_else_is_decoded_whole() {
        let hello = message(&v1::AgentMessage {
            msg: Some(v1::agent_message::Msg::Hello(v1::Hello::default())),
        });
        assert_eq!(sole_report(&hello), None);
        assert_eq!(sole_report(&[]), None);
        // A report followed by another field, a truncated length, a length past the end.
        let mut two = message(&v1::AgentMessage {
            msg: Some(v1::agent_message::Msg::Report(v1::Report {
                seq: 1,
                ..v1::Report::default()
            })),
        });
        two.extend_from_slice(&[0x12, 0x00]);
        assert_eq!(sole_report(&two), None);
        assert_eq!(sole_report(&[0x12, 0x80]), None);
        assert_eq!(sole_report(&[0x12, 0x05, 0x08]), None);
    }
}
