//! Misbehaving sessions run beside the simulated cluster: some never read what the aggregator
//! sends, some send garbage after a valid Hello (and come back every two seconds to do it again).
//!
//! Why in the same run: the figures must hold with them present. Each has its own connection, as
//! a broken agent on its own node would, so a stream that never reads cannot stall well-behaved
//! sessions through a shared connection window; what bounds it is the aggregator's per-session
//! outbox and its limits, which the counters printed at the end show at work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use echomesh_proto::v1::{self, AgentMessage, agent_message};
use echomesh_testkit::sim;
use prost::Message as _;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;

use super::codec::SizedCodec;

/// What the misbehaving sessions saw.
#[derive(Debug, Default)]
pub(crate) struct RogueCounts {
    /// Garbage messages sent.
    pub(crate) garbage_sent: AtomicU64,
    /// Sessions the aggregator ended after garbage.
    pub(crate) garbage_refused: AtomicU64,
    /// The status of the first refusal.
    pub(crate) garbage_status: parking_lot::Mutex<String>,
}

async fn open(
    url: &str,
    authorization: &str,
    node: &str,
    addr: &str,
) -> anyhow::Result<(mpsc::Sender<Bytes>, tonic::Streaming<super::codec::Sized>)> {
    let ch = echomesh_proto::url::AggregatorUrl::parse(url)?
        .connect_with(Duration::from_secs(30), None, None)
        .await?;
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await?;
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let mut hello = sim::hello(node, v1::Network::Pod, addr);
    hello.version = "rogue".into();
    let hello = AgentMessage {
        msg: Some(agent_message::Msg::Hello(hello)),
    };
    tx.send(hello.encode_to_vec().into()).await?;
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    req.metadata_mut()
        .insert("authorization", authorization.parse()?);
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/echomesh.v1.AgentService/Session");
    let s = grpc
        .streaming(req, path, SizedCodec)
        .await
        .context("session")?
        .into_inner();
    Ok((tx, s))
}

/// Starts `n` never-reading and `n` garbage-sending sessions, until `stop`.
pub(crate) fn spawn(
    url: &str,
    authorization: &str,
    n: usize,
    stop: &Arc<AtomicBool>,
    counts: &Arc<RogueCounts>,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let (u, auth, halt) = (url.to_string(), authorization.to_string(), stop.clone());
        set.spawn(async move {
            // Never reads: the stream is held open and never polled.
            let node = format!("rogue-silent-{i}");
            let Ok((_tx, s)) = open(&u, &auth, &node, &format!("10.9.0.{}", i + 1)).await else {
                return;
            };
            while !halt.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            drop(s);
        });
        let (url, auth, stop, counts) = (
            url.to_string(),
            authorization.to_string(),
            stop.clone(),
            counts.clone(),
        );
        set.spawn(async move {
            let node = format!("rogue-garbage-{i}");
            while !stop.load(Ordering::Relaxed) {
                if let Ok((tx, mut s)) =
                    open(&url, &auth, &node, &format!("10.9.1.{}", i + 1)).await
                {
                    // A Report whose length prefix runs past the message.
                    let junk =
                        Bytes::from_static(&[0x12, 0xff, 0xff, 0x03, 0x08, 0x01, 0xde, 0xad]);
                    if tx.send(junk).await.is_ok() {
                        counts.garbage_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    loop {
                        match tokio::time::timeout(Duration::from_secs(5), s.message()).await {
                            Ok(Ok(Some(_))) => {}
                            Ok(Err(status)) => {
                                counts.garbage_refused.fetch_add(1, Ordering::Relaxed);
                                let mut first = counts.garbage_status.lock();
                                if first.is_empty() {
                                    *first = format!("{:?}: {}", status.code(), status.message());
                                }
                                break;
                            }
                            _ => break,
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }
    set
}

/// The aggregator's refusal counters from `/metrics` (the non-zero ones), and the report entries
/// it set aside as retired (in flight when a list changed: not refusals, shown for scale).
pub(crate) async fn refusal_counters(http: std::net::SocketAddr) -> Vec<String> {
    let reply = echomesh_testkit::http::get(http, "/metrics").await;
    reply
        .body
        .lines()
        .filter(|l| {
            (l.starts_with("echomesh_ingest_errors_total")
                || l.starts_with("echomesh_connections_closed_total")
                || l.starts_with("echomesh_agent_auth_failures_total")
                || l.starts_with("echomesh_report_entries_retired_total"))
                && !l.ends_with(" 0")
        })
        .map(str::to_string)
        .collect()
}
