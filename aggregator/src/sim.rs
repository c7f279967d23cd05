//! A simulated agent speaking the real Session protocol over gRPC.
//!
//! Used by the CLI tests and the load generator: it is the honest way to drive the aggregator
//! without raw sockets — everything past the probe engine (hello, assignment, reports, acks) is
//! the real wire protocol.

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

/// What went wrong in a simulated session.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The aggregator ended the stream with a status.
    #[error("aggregator status: {0}")]
    Status(#[from] tonic::Status),
    /// The stream ended cleanly when more was expected.
    #[error("session ended")]
    Ended,
    /// Nothing arrived in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Our outgoing stream is closed.
    #[error("outgoing stream closed")]
    Closed,
}

/// One simulated agent session.
#[derive(Debug)]
pub struct SimAgent {
    tx: mpsc::Sender<AgentMessage>,
    rx: Streaming<AggregatorMessage>,
    /// The latest assignment.
    pub assignment: Option<v1::Assignment>,
    seq: u64,
}

/// A Hello for a pod-network agent on `node` with one address.
#[must_use]
pub fn hello(node: &str, addr: &str) -> v1::Hello {
    v1::Hello {
        node: node.into(),
        pod: format!("echomesh-agent-{node}"),
        network: v1::Network::Pod as i32,
        addresses: vec![addr.into()],
        version: "sim".into(),
        boot_id: 1,
    }
}

impl SimAgent {
    /// Opens a session and says Hello.
    pub async fn connect(ch: Channel, hello: v1::Hello) -> Result<Self, SimError> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(AgentMessage {
            msg: Some(agent_message::Msg::Hello(hello)),
        })
        .await
        .map_err(|_| SimError::Closed)?;
        let rx = AgentServiceClient::new(ch)
            .max_encoding_message_size(256 << 20)
            .max_decoding_message_size(256 << 20)
            .session(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(Self {
            tx,
            rx,
            assignment: None,
            seq: 0,
        })
    }

    async fn next(&mut self, wait: Duration) -> Result<AggregatorMessage, SimError> {
        match tokio::time::timeout(wait, self.rx.message()).await {
            Err(_) => Err(SimError::Timeout("a message from the aggregator")),
            Ok(Err(s)) => Err(SimError::Status(s)),
            Ok(Ok(None)) => Err(SimError::Ended),
            Ok(Ok(Some(m))) => Ok(m),
        }
    }

    /// Waits until an assignment with exactly `targets` targets arrived.
    pub async fn wait_assignment(
        &mut self,
        targets: usize,
        wait: Duration,
    ) -> Result<&v1::Assignment, SimError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self
                .assignment
                .as_ref()
                .is_some_and(|a| a.targets.len() == targets)
            {
                break;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Some(aggregator_message::Msg::Assignment(a)) = self.next(left).await?.msg {
                self.assignment = Some(a);
            }
        }
        self.assignment.as_ref().ok_or(SimError::Ended)
    }

    /// A report with the same figures for every assigned target.
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

    /// Sets the next sequence number (for replaying a pre-built report with fresh numbers).
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Sends a report.
    pub async fn send(&self, report: v1::Report) -> Result<(), SimError> {
        self.tx
            .send(AgentMessage {
                msg: Some(agent_message::Msg::Report(report)),
            })
            .await
            .map_err(|_| SimError::Closed)
    }

    /// Waits for the next ack and returns its sequence number (assignments are kept).
    pub async fn recv_ack(&mut self, wait: Duration) -> Result<u64, SimError> {
        loop {
            match self.next(wait).await?.msg {
                Some(aggregator_message::Msg::Ack(a)) => return Ok(a.seq),
                Some(aggregator_message::Msg::Assignment(a)) => self.assignment = Some(a),
                None => {}
            }
        }
    }

    /// Waits for the ack of `seq`.
    pub async fn wait_ack(&mut self, seq: u64, wait: Duration) -> Result<(), SimError> {
        while self.recv_ack(wait).await? < seq {}
        Ok(())
    }
}
