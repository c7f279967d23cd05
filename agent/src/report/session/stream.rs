//! One open Session stream: what was sent on it, and the rule that reports go out in sequence.
//!
//! Reports are never sent past a full channel by dropping them: the stream remembers the highest
//! sequence number it handed to the transport, and each flush sends the buffered reports above
//! it as far as there is room. A slow or stalled aggregator therefore delays reports (bounded by
//! the replay buffer) instead of losing ones that a later cumulative ack would then forget.

use echomesh_proto::v1::{
    self, AgentMessage, AggregatorMessage, agent_service_client::AgentServiceClient,
};
use std::sync::Arc;

use echomesh_proto::bound::body::{Check, CheckedClient};
use echomesh_proto::bound::check_aggregator_message;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::probe::targets::MAX_TARGETS;
use crate::report::connect::ConnectError;
use crate::report::replay::{ReplayBuffer, may_replay};
use crate::report::wire::{self, InForce};

/// Messages queued towards the transport; beyond this the loop waits for room (flow control).
const SEND_QUEUE: usize = 256;
/// Largest message either way (a full assignment of a large cluster).
const MAX_MESSAGE: usize = 256 << 20;

/// An open Session stream.
#[derive(Debug)]
pub(super) struct Stream {
    tx: mpsc::Sender<AgentMessage>,
    rx: Streaming<AggregatorMessage>,
    /// An assignment arrived on this stream.
    pub(super) assigned: bool,
    /// The buffer may flow on this stream (it was replayed, or held nothing to wait for).
    replayed: bool,
    /// Highest report sequence number handed to the transport on this stream.
    sent_upto: u64,
    pub(super) opened: Instant,
}

impl Stream {
    /// Opens the Session call on `ch`, saying `hello` first.
    /// `authorization` (a bearer token) goes into the call's metadata.
    pub(super) async fn open(
        ch: Channel,
        hello: v1::Hello,
        authorization: Option<MetadataValue<Ascii>>,
    ) -> Result<Self, ConnectError> {
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        // The queue is empty: this cannot fail for lack of room.
        let _ = tx.try_send(wire::hello_msg(hello));
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(v) = authorization {
            request.metadata_mut().insert("authorization", v);
        }
        // A message is checked on its wire bytes before it is decoded: an assignment of millions
        // of empty targets (2 bytes each) is refused instead of decoded into gigabytes. Within
        // the most targets the agent can run at all, `--max-targets` is enforced after the
        // decode by the guard, which keeps the last good assignment and tells the aggregator.
        let check: Check = Arc::new(|m: &[u8]| {
            check_aggregator_message(m, MAX_TARGETS).map_err(|e| e.to_status())
        });
        let rx = AgentServiceClient::new(CheckedClient::new(ch, check, MAX_MESSAGE))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
            .session(request)
            .await?
            .into_inner();
        Ok(Self {
            tx,
            rx,
            assigned: false,
            replayed: false,
            sent_upto: 0,
            opened: Instant::now(),
        })
    }

    /// The next message from the aggregator; `Ok(None)` when it closed the stream.
    pub(super) async fn message(&mut self) -> Result<Option<AggregatorMessage>, tonic::Status> {
        self.rx.message().await
    }

    /// Sends a message that is worth nothing late (an alert): dropped when the queue is full.
    pub(super) fn send_now(&self, m: AgentMessage) {
        let _ = self.tx.try_send(m);
    }

    /// Starts the replay once the stream is assigned and the replay cannot lose entries (or the
    /// grace period is over), then sends what the queue has room for.
    pub(super) fn flush(&mut self, buffer: &ReplayBuffer, current: &InForce) {
        if !self.replayed {
            if !self.assigned || !may_replay(self.opened.elapsed(), buffer, current) {
                return;
            }
            self.replayed = true;
        }
        for r in buffer.after(self.sent_upto) {
            if self.tx.try_send(wire::report_msg(r)).is_err() {
                // Full: the rest goes on the next flush. Closed: the stream's end arrives next.
                break;
            }
            self.sent_upto = r.seq;
        }
    }
}
