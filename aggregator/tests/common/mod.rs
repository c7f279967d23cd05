//! A real aggregator on 127.0.0.1:0 and simulated agents speaking the Session protocol.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use echomesh_aggregator::{Aggregator, Config, Graph};
use echomesh_proto::Histogram;
use echomesh_proto::v1::{
    self, AgentMessage, AggregatorMessage, agent_message, agent_service_client::AgentServiceClient,
    aggregator_message, graph_service_client::GraphServiceClient,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

/// Generous bound for anything that should happen "soon" (tests must never flake).
pub const SOON: Duration = Duration::from_secs(10);

pub struct Server {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub graph: Arc<Graph>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = Config::local();
        cfg.assign_debounce = Duration::from_millis(20);
        tweak(&mut cfg);
        let agg = Aggregator::bind(cfg).await.expect("bind");
        let (grpc, http, graph) = (agg.grpc_addr(), agg.http_addr(), agg.graph());
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            agg.serve(async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Self {
            grpc,
            http,
            graph,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }

    pub async fn graph_client(&self) -> GraphServiceClient<Channel> {
        GraphServiceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(SOON, t)
                .await
                .expect("server stops")
                .expect("server task");
        }
    }
}

/// A simulated agent: one Session stream.
pub struct SimAgent {
    pub tx: mpsc::Sender<AgentMessage>,
    pub rx: Streaming<AggregatorMessage>,
    pub assignment: Option<v1::Assignment>,
    pub seq: u64,
}

pub fn hello(node: &str, network: v1::Network, addr: &str) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(v1::Hello {
            node: node.into(),
            pod: format!("echomesh-agent-{node}"),
            network: network as i32,
            addresses: vec![addr.into()],
            version: "test".into(),
            boot_id: 42,
        })),
    }
}

impl SimAgent {
    /// Opens a session and sends `first` (usually a Hello).
    pub async fn open(ch: Channel, first: AgentMessage) -> Result<Self, tonic::Status> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(first).await.expect("queue");
        let mut client = AgentServiceClient::new(ch).max_encoding_message_size(256 << 20);
        let rx = client.session(ReceiverStream::new(rx)).await?.into_inner();
        Ok(Self {
            tx,
            rx,
            assignment: None,
            seq: 0,
        })
    }

    pub async fn connect(ch: Channel, node: &str, addr: &str) -> Self {
        Self::open(ch, hello(node, v1::Network::Pod, addr))
            .await
            .expect("session")
    }

    /// Next message from the aggregator, or the stream's error.
    pub async fn next(&mut self) -> Result<Option<AggregatorMessage>, tonic::Status> {
        tokio::time::timeout(SOON, self.rx.message())
            .await
            .expect("aggregator answers in time")
    }

    /// Waits for an assignment with exactly `n` targets (earlier, smaller ones are skipped).
    pub async fn wait_assignment(&mut self, n: usize) -> v1::Assignment {
        loop {
            match self
                .next()
                .await
                .expect("stream ok")
                .expect("stream open")
                .msg
            {
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

    /// A report for every assigned target with `sent`/`lost` and replies at `rtt_us`.
    pub fn make_report(&mut self, sent: u64, lost: u64, rtt_us: u64) -> v1::Report {
        self.seq += 1;
        let a = self.assignment.as_ref().expect("assigned");
        let mut h = Histogram::new();
        for _ in 0..sent.saturating_sub(lost) {
            h.record(Duration::from_micros(rtt_us));
        }
        let wire = v1::Histogram::from(&h);
        v1::Report {
            seq: self.seq,
            generation: a.generation,
            window_start_unix_ms: 0,
            window_ms: 1000,
            targets: a
                .targets
                .iter()
                .enumerate()
                .map(|(slot, t)| v1::TargetStats {
                    target_id: t.id,
                    slot: slot as u32,
                    sent,
                    received: sent - lost,
                    lost,
                    rtt: Some(wire.clone()),
                    ..v1::TargetStats::default()
                })
                .collect(),
        }
    }

    pub async fn send_report(&mut self, r: v1::Report) {
        self.tx
            .send(AgentMessage {
                msg: Some(agent_message::Msg::Report(r)),
            })
            .await
            .expect("send");
    }

    /// Waits for the ack of `seq`.
    pub async fn wait_ack(&mut self, seq: u64) {
        loop {
            match self
                .next()
                .await
                .expect("stream ok")
                .expect("stream open")
                .msg
            {
                Some(aggregator_message::Msg::Ack(a)) if a.seq == seq => return,
                Some(aggregator_message::Msg::Assignment(a)) => self.assignment = Some(a),
                _ => {}
            }
        }
    }

    /// Reads until the stream ends with an error status.
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

/// Polls `f` until it returns true, within [`SOON`].
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + SOON;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}
