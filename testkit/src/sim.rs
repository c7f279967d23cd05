//! A simulated agent speaking the real Session protocol over gRPC.
//!
//! It is the honest way to drive the aggregator without raw sockets: everything past the probe
//! engine (hello, assignment, reports, acks, the stream's closing status) is the real wire
//! protocol. Waits are bounded by [`SOON`] and panic with what was awaited, so a test reads as
//! the conversation it checks.

use std::time::Duration;

use echomesh_proto::Histogram;
use echomesh_proto::v1::{
    self, AgentMessage, AggregatorMessage, agent_message, agent_service_client::AgentServiceClient,
    aggregator_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::SOON;

/// A Hello for an agent on `node` in `network` with one address.
#[must_use]
pub fn hello(node: &str, network: v1::Network, addr: &str) -> v1::Hello {
    v1::Hello {
        node: node.into(),
        pod: format!("echomesh-agent-{node}"),
        network: network as i32,
        addresses: vec![addr.into()],
        version: "sim".into(),
        boot_id: 1,
        started_at_unix_ms: 0,
        zone: String::new(),
    }
}

/// [`hello`] wrapped as the first message of a session.
#[must_use]
pub fn hello_message(node: &str, network: v1::Network, addr: &str) -> AgentMessage {
    message_of_hello(hello(node, network, addr))
}

/// `hello` wrapped as the first message of a session (tests that change its fields).
#[must_use]
pub fn message_of_hello(hello: v1::Hello) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(hello)),
    }
}

/// A pod-network Hello of `node` from pod `pod` started at `started` (unix ms, also its boot
/// id), as the two pods of one node in a surge rollout send it.
#[must_use]
pub fn rollout_hello(node: &str, pod: &str, started: u64, addr: &str) -> AgentMessage {
    message_of_hello(v1::Hello {
        pod: pod.into(),
        boot_id: started,
        started_at_unix_ms: started,
        ..hello(node, v1::Network::Pod, addr)
    })
}

/// One simulated agent session.
#[derive(Debug)]
pub struct SimAgent {
    tx: mpsc::Sender<AgentMessage>,
    rx: Streaming<AggregatorMessage>,
    /// The latest assignment received.
    pub assignment: Option<v1::Assignment>,
    /// The sequence number of the last report built.
    pub seq: u64,
}

impl SimAgent {
    /// Opens a session and sends `first` (usually a Hello; tests of refusals send anything).
    pub async fn open(ch: Channel, first: AgentMessage) -> Result<Self, tonic::Status> {
        Self::open_with_token(ch, first, None).await
    }

    /// [`SimAgent::open`] sending `token` as `authorization: Bearer <token>`.
    ///
    /// # Panics
    ///
    /// When `token` is not a valid metadata value.
    pub async fn open_with_token(
        ch: Channel,
        first: AgentMessage,
        token: Option<&str>,
    ) -> Result<Self, tonic::Status> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(first)
            .await
            .map_err(|_| tonic::Status::internal("session queue closed"))?;
        let rx = AgentServiceClient::new(ch)
            .max_encoding_message_size(256 << 20)
            .max_decoding_message_size(256 << 20)
            .session({
                let mut req = tonic::Request::new(ReceiverStream::new(rx));
                if let Some(t) = token {
                    req.metadata_mut().insert(
                        "authorization",
                        format!("Bearer {t}").parse().expect("token is metadata"),
                    );
                }
                req
            })
            .await?
            .into_inner();
        Ok(Self {
            tx,
            rx,
            assignment: None,
            seq: 0,
        })
    }

    /// Opens a session with `first` (and `token`, as [`SimAgent::open_with_token`]) that the
    /// aggregator must refuse, at once or on its first answer, and returns the refusal.
    ///
    /// # Panics
    ///
    /// When the stream ends cleanly or nothing arrives within [`SOON`].
    pub async fn refusal(ch: Channel, first: AgentMessage, token: Option<&str>) -> tonic::Status {
        match Self::open_with_token(ch, first, token).await {
            Err(st) => st,
            Ok(mut a) => a.wait_error().await,
        }
    }

    /// Opens a session as a pod-network agent on `node` with address `addr`.
    ///
    /// # Panics
    ///
    /// When the aggregator refuses the session.
    pub async fn connect(ch: Channel, node: &str, addr: &str) -> Self {
        Self::open(ch, hello_message(node, v1::Network::Pod, addr))
            .await
            .expect("session")
    }

    /// The next message within `wait`: `None` on timeout, else what the stream yielded.
    pub async fn next_within(
        &mut self,
        wait: Duration,
    ) -> Option<Result<Option<AggregatorMessage>, tonic::Status>> {
        tokio::time::timeout(wait, self.rx.message()).await.ok()
    }

    /// The next message from the aggregator, or the stream's error.
    ///
    /// # Panics
    ///
    /// When nothing arrives within [`SOON`].
    pub async fn next(&mut self) -> Result<Option<AggregatorMessage>, tonic::Status> {
        self.next_within(SOON)
            .await
            .expect("aggregator answers in time")
    }

    /// The next message's body, for the waits below.
    async fn next_msg(&mut self) -> Option<aggregator_message::Msg> {
        self.next()
            .await
            .expect("stream ok")
            .expect("stream open")
            .msg
    }

    /// Waits for a new assignment with exactly `n` targets (earlier, other-sized ones are kept
    /// in [`SimAgent::assignment`] and skipped).
    ///
    /// # Panics
    ///
    /// When the stream fails or ends, or nothing arrives within [`SOON`].
    pub async fn wait_assignment(&mut self, n: usize) -> v1::Assignment {
        loop {
            match self.next_msg().await {
                Some(aggregator_message::Msg::Assignment(a)) => {
                    let done = a.targets.len() == n;
                    self.assignment = Some(a.clone());
                    if done {
                        return a;
                    }
                }
                Some(aggregator_message::Msg::Ack(_)) | None => {}
            }
        }
    }

    /// The node of each target of the latest assignment, by target id.
    ///
    /// # Panics
    ///
    /// Before the first assignment.
    #[must_use]
    pub fn target_nodes(&self) -> std::collections::HashMap<u64, String> {
        self.assignment
            .as_ref()
            .expect("assigned")
            .targets
            .iter()
            .map(|t| (t.id, t.node.clone()))
            .collect()
    }

    /// A report with the same figures for every assigned target (no targets before the first
    /// assignment), under the next sequence number.
    pub fn report(&mut self, sent: u64, lost: u64, rtt: &Histogram) -> v1::Report {
        self.seq += 1;
        let wire = v1::Histogram::from(rtt);
        let (generation, targets) = match &self.assignment {
            None => (0, Vec::new()),
            Some(a) => (
                a.generation,
                a.targets
                    .iter()
                    .enumerate()
                    .map(|(slot, t)| v1::TargetStats {
                        target_id: t.id,
                        slot: slot as u32,
                        sent,
                        received: sent.saturating_sub(lost),
                        lost,
                        rtt: Some(wire.clone()),
                        ..v1::TargetStats::default()
                    })
                    .collect(),
            ),
        };
        v1::Report {
            seq: self.seq,
            generation,
            window_start_unix_ms: 0,
            window_ms: 1000,
            targets,
        }
    }

    /// [`SimAgent::report`] with every reply at `rtt_us`.
    pub fn make_report(&mut self, sent: u64, lost: u64, rtt_us: u64) -> v1::Report {
        let mut h = Histogram::new();
        for _ in 0..sent.saturating_sub(lost) {
            h.record(Duration::from_micros(rtt_us));
        }
        self.report(sent, lost, &h)
    }

    /// Sends a report.
    ///
    /// # Panics
    ///
    /// When the outgoing stream is closed.
    pub async fn send_report(&mut self, r: v1::Report) {
        self.tx
            .send(AgentMessage {
                msg: Some(agent_message::Msg::Report(r)),
            })
            .await
            .expect("send");
    }

    /// Sends `r` and waits for its ack.
    ///
    /// # Panics
    ///
    /// As [`SimAgent::send_report`] and [`SimAgent::wait_ack`].
    pub async fn send_report_acked(&mut self, r: v1::Report) {
        let seq = r.seq;
        self.send_report(r).await;
        self.wait_ack(seq).await;
    }

    /// [`SimAgent::make_report`], sent and acked; returns its sequence number.
    ///
    /// # Panics
    ///
    /// As [`SimAgent::send_report`] and [`SimAgent::wait_ack`].
    pub async fn report_acked(&mut self, sent: u64, lost: u64, rtt_us: u64) -> u64 {
        let r = self.make_report(sent, lost, rtt_us);
        let seq = r.seq;
        self.send_report_acked(r).await;
        seq
    }

    /// Sends any message (tests of refusals and of `AssignmentRejected`).
    ///
    /// # Panics
    ///
    /// When the outgoing stream is closed.
    pub async fn send(&mut self, m: AgentMessage) {
        self.tx.send(m).await.expect("send");
    }

    /// Waits for the ack of `seq` (assignments met on the way are kept).
    ///
    /// # Panics
    ///
    /// When the stream fails or ends, or nothing arrives within [`SOON`].
    pub async fn wait_ack(&mut self, seq: u64) {
        loop {
            match self.next_msg().await {
                Some(aggregator_message::Msg::Ack(a)) if a.seq == seq => return,
                Some(aggregator_message::Msg::Assignment(a)) => self.assignment = Some(a),
                _ => {}
            }
        }
    }

    /// Reads until the stream ends with an error status, and returns it.
    ///
    /// # Panics
    ///
    /// When the stream ends cleanly or nothing arrives within [`SOON`].
    pub async fn wait_error(&mut self) -> tonic::Status {
        loop {
            match self.next().await {
                Err(s) => return s,
                Ok(None) => panic!("stream ended without a status"),
                Ok(Some(_)) => {}
            }
        }
    }
}
