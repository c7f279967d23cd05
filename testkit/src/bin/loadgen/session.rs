//! The simulated agents' Session streams: connect, get assigned, then report.
//!
//! Each agent is its own HTTP/2 connection, as real agents are, so the aggregator pays the real
//! per-connection cost; reports go out through the pre-encoding codec.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use echomesh_proto::v1::{
    self, AgentMessage, AggregatorMessage, agent_message, aggregator_message,
};
use echomesh_testkit::sim;
use prost::Message as _;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::codec::{Out, RawCodec};
use crate::secure::Secure;
use crate::workload::{FLAPPING, node_addr, node_name, window_histogram};

/// One agent's Session stream with its pre-encoded reports.
pub(crate) struct Session {
    /// Outgoing messages.
    pub(crate) tx: mpsc::Sender<Out>,
    /// Replies.
    pub(crate) rx: tonic::Streaming<AggregatorMessage>,
    /// The report body for every assigned target, all fine.
    pub(crate) rest: Bytes,
    /// The same report with the first [`FLAPPING`] targets fully lost.
    pub(crate) rest_lossy: Bytes,
    /// Assigned targets (edges per report).
    pub(crate) targets: usize,
}
/// Connects agent `i` of `agents`, says Hello, waits for its full-mesh assignment and
/// pre-encodes its reports; `permit` is released once connected.
async fn open_session(
    url: &str,
    i: usize,
    agents: usize,
    permit: tokio::sync::OwnedSemaphorePermit,
    secure: Option<&Secure>,
) -> anyhow::Result<Session> {
    let ch = echomesh_proto::url::AggregatorUrl::parse(url)?
        .connect_with(
            Duration::from_secs(30),
            None,
            secure.map(|s| s.ca_pem.as_slice()),
        )
        .await
        .context("connect")?;
    let mut grpc = tonic::client::Grpc::new(ch)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    grpc.ready().await.context("ready")?;
    let (tx, rx) = mpsc::channel::<Out>(64);
    let mut hello = sim::hello(&node_name(i), v1::Network::Pod, &node_addr(i));
    hello.version = "loadgen".into();
    let hello = AgentMessage {
        msg: Some(agent_message::Msg::Hello(hello)),
    };
    tx.send(Out::Raw(hello.encode_to_vec().into())).await?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/echomesh.v1.AgentService/Session");
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(s) = secure {
        request
            .metadata_mut()
            .insert("authorization", s.authorization.parse()?);
    }
    let mut rx_stream = grpc.streaming(request, path, RawCodec).await?.into_inner();
    // Connected: let the next agents connect while this one waits for the full pinglist.
    drop(permit);
    let want = agents - 1;
    let assignment = loop {
        let m = tokio::time::timeout(Duration::from_secs(120), rx_stream.message())
            .await
            .context("no assignment within 120s")??
            .context("session ended")?;
        if let Some(aggregator_message::Msg::Assignment(a)) = m.msg
            && a.targets.len() == want
        {
            break a;
        }
    };
    let wire = v1::Histogram::from(&window_histogram());
    let report = v1::Report {
        seq: 0,
        generation: assignment.generation,
        window_start_unix_ms: 0,
        window_ms: 1000,
        targets: assignment
            .targets
            .iter()
            .enumerate()
            .map(|(slot, t)| v1::TargetStats {
                target_id: t.id,
                slot: slot as u32,
                sent: 10,
                received: 10,
                lost: 0,
                rtt: Some(wire.clone()),
                ..v1::TargetStats::default()
            })
            .collect(),
    };
    let mut lossy = report.clone();
    for t in lossy.targets.iter_mut().take(FLAPPING) {
        t.received = 0;
        t.lost = t.sent;
        t.rtt = None;
    }
    Ok(Session {
        tx,
        rx: rx_stream,
        rest: report.encode_to_vec().into(),
        rest_lossy: lossy.encode_to_vec().into(),
        targets: want,
    })
}

/// Connects `n` agents (at most 64 handshakes at a time), in index order.
pub(crate) async fn connect_all(
    url: &str,
    n: usize,
    secure: Option<Arc<Secure>>,
) -> anyhow::Result<Vec<Session>> {
    let mut set = tokio::task::JoinSet::new();
    // Connect in batches so the handshakes do not all time out together.
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..n {
        let url = url.to_string();
        let sem = sem.clone();
        let secure = secure.clone();
        set.spawn(async move {
            let permit = sem.acquire_owned().await?;
            open_session(&url, i, n, permit, secure.as_deref())
                .await
                .map(|s| (i, s))
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// What one agent measured.
#[derive(Debug, Default)]
pub(crate) struct AgentResult {
    /// Acks received.
    pub(crate) acks: u64,
    /// Edge updates acked (targets per acked report).
    pub(crate) edge_updates: u64,
    /// Report-to-ack latencies, microseconds.
    pub(crate) latencies_us: Vec<u32>,
}

/// Sends reports until `stop`: `window` in flight, or one per `period` when given.
pub(crate) async fn drive(
    mut s: Session,
    window: usize,
    period: Option<Duration>,
    phase: Duration,
    flap: bool,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<AgentResult> {
    let mut res = AgentResult::default();
    // Seq 1 was the warm-up report.
    let mut seq = 1u64;
    let mut sent_at = std::collections::VecDeque::new();
    match period {
        None => loop {
            while sent_at.len() < window && !stop.load(Ordering::Relaxed) {
                seq += 1;
                sent_at.push_back(Instant::now());
                s.tx.send(Out::Report {
                    seq,
                    rest: s.rest.clone(),
                })
                .await?;
            }
            if sent_at.is_empty() {
                return Ok(res);
            }
            let m = s.rx.message().await?.context("ended")?;
            if let Some(aggregator_message::Msg::Ack(_)) = m.msg {
                let t0 = sent_at.pop_front().context("ack without report")?;
                res.latencies_us
                    .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                res.acks += 1;
                res.edge_updates += s.targets as u64;
            }
        },
        Some(p) => {
            tokio::time::sleep(phase).await;
            let mut tick = tokio::time::interval(p);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                seq += 1;
                let t0 = Instant::now();
                let rest = if flap && (seq / 5) % 2 == 1 {
                    s.rest_lossy.clone()
                } else {
                    s.rest.clone()
                };
                s.tx.send(Out::Report { seq, rest }).await?;
                loop {
                    let m = s.rx.message().await?.context("ended")?;
                    if let Some(aggregator_message::Msg::Ack(_)) = m.msg {
                        break;
                    }
                }
                res.latencies_us
                    .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                res.acks += 1;
                res.edge_updates += s.targets as u64;
            }
            Ok(res)
        }
    }
}
