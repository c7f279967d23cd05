//! One simulated agent: Hello, then its assignments in, one report per second out, and an alert
//! per target whose reachability flips, as a real agent sends them.
//!
//! Why a task per agent over a shared connection: 10,000 sessions are 10,000 HTTP/2 streams, and
//! a connection each would cost the aggregator 10,000 sockets and handshakes that a real cluster
//! spreads over many machines. The stream count per connection stays within the aggregator's
//! limit. The report is encoded only when the list or the truth changed; in between only its
//! sequence number is written, so the load generator's CPU goes to HTTP/2, not to encoding.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use echomesh_proto::v1::{self, AgentMessage, agent_message, aggregator_message};
use echomesh_testkit::sim;
use prost::Message as _;
use prost::bytes::{BufMut as _, Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::cluster::{Cluster, agent_addr, agent_index, network_of, node_index, node_name};
use super::codec::{Sized, SizedCodec};

/// Probes per window per target (10 Hz over a 1 s report).
const PROBES: u64 = 10;
/// Time from a cut to the agent's alert: `--down-after` (6) probes at 100 ms.
const ALERT_AFTER: Duration = Duration::from_millis(600);

/// One target of the current list.
#[derive(Clone, Copy)]
struct Slot {
    id: u64,
    agent: u32,
    node: usize,
}

/// Runs agent `a` (boot `boot`) until the task is aborted, reconnecting after 1-2 s when its
/// session ends, as a real agent does; `first` learns when its first assignment arrived.
pub(crate) async fn run(
    cluster: Arc<Cluster>,
    a: usize,
    boot: u64,
    mut first: Option<oneshot::Sender<Instant>>,
) {
    loop {
        match session(&cluster, a, boot, &mut first).await {
            Ok(()) => cluster.error(format!("agent {a}: the aggregator ended the session")),
            Err(e) => cluster.error(format!("agent {a}: {e:#}")),
        }
        let jitter = Duration::from_millis(1000 + (a as u64 * 7919) % 1000);
        tokio::time::sleep(jitter).await;
    }
}

async fn session(
    cluster: &Cluster,
    a: usize,
    boot: u64,
    first: &mut Option<oneshot::Sender<Instant>>,
) -> anyhow::Result<()> {
    let node = a / super::cluster::PER_NODE;
    let ch = cluster.pool[a % cluster.pool.len()].clone();
    let mut grpc = tonic::client::Grpc::new(ch)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    grpc.ready().await.context("ready")?;
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let mut hello = sim::hello(&node_name(node), network_of(a), &agent_addr(a));
    hello.version = "scale".into();
    hello.boot_id = boot;
    hello.zone = cluster.truth.zone_name(node);
    let hello = AgentMessage {
        msg: Some(agent_message::Msg::Hello(hello)),
    };
    tx.send(hello.encode_to_vec().into()).await?;
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("authorization", cluster.authorization.parse()?);
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/echomesh.v1.AgentService/Session");
    let mut stream = grpc
        .streaming(request, path, SizedCodec)
        .await
        .context("session")?
        .into_inner();

    let mut slots: Vec<Slot> = Vec::new();
    let mut generation = 0u64;
    // The encoded report body and the (generation, truth version) it was made for.
    let mut body: Option<(Bytes, u64, u64)> = None;
    let mut seq = 0u64;
    let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::new();
    // Reachability last alerted per slot, and when the next alert round is due.
    let mut alerted: Vec<bool> = Vec::new();
    let mut alert_at: Option<tokio::time::Instant> = None;
    let mut truth_rx = cluster.truth_tx.subscribe();
    // Spread the agents' reports over the second.
    let phase = Duration::from_micros((a as u64 * 7919 * 1000) % 1_000_000);
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + phase, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = stream.message() => {
                let Some(Sized { msg, bytes }) = m? else { return Ok(()) };
                match msg.msg {
                    Some(aggregator_message::Msg::Assignment(asg)) => {
                        let new: Vec<Slot> = asg
                            .targets
                            .iter()
                            .map(|t| {
                                let node = node_index(&t.node).unwrap_or(usize::MAX);
                                let net = v1::Network::try_from(t.network).unwrap_or_default();
                                let agent = if node == usize::MAX {
                                    u32::MAX
                                } else {
                                    agent_index(node, net) as u32
                                };
                                Slot { id: t.id, agent, node }
                            })
                            .collect();
                        let changed = generation == 0
                            || new.len() != slots.len()
                            || new.iter().zip(&slots).any(|(x, y)| x.id != y.id);
                        let c = &cluster.assign;
                        c.count.fetch_add(1, Ordering::Relaxed);
                        c.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                        if changed {
                            c.changed.fetch_add(1, Ordering::Relaxed);
                            c.changed_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                        }
                        let view = cluster.truth.view();
                        alerted = new.iter().map(|s| reachable(&view, node, s)).collect();
                        slots = new;
                        generation = asg.generation;
                        let list: Vec<u32> =
                            slots.iter().map(|s| s.agent).filter(|&t| t != u32::MAX).collect();
                        *cluster.lists[a].lock() = Arc::new(list);
                        body = None;
                        if let Some(f) = first.take() {
                            let _ = f.send(Instant::now());
                        }
                    }
                    Some(aggregator_message::Msg::Ack(ack)) => {
                        while let Some(&(s, t0)) = in_flight.front() {
                            if s > ack.seq {
                                break;
                            }
                            in_flight.pop_front();
                            if s == ack.seq {
                                cluster.acks.fetch_add(1, Ordering::Relaxed);
                                cluster.entries.fetch_add(slots.len() as u64, Ordering::Relaxed);
                                if cluster.recording.load(Ordering::Relaxed) {
                                    let us = t0.elapsed().as_micros().min(u128::from(u32::MAX));
                                    cluster.ack_us.lock().push(us as u32);
                                }
                            }
                        }
                    }
                    None => {}
                }
            }
            _ = tick.tick(), if generation != 0 => {
                let version = cluster.truth.version();
                let fresh = matches!(&body, Some((_, g, v)) if *g == generation && *v == version);
                if !fresh {
                    let view = cluster.truth.view();
                    let report = v1::Report {
                        seq: 0,
                        generation,
                        window_start_unix_ms: 0,
                        window_ms: 1000,
                        targets: slots
                            .iter()
                            .enumerate()
                            .map(|(slot, s)| target_stats(cluster, &view, node, slot, s))
                            .collect(),
                    };
                    body = Some((report.encode_to_vec().into(), generation, version));
                    let list = cluster.list(a);
                    cluster.cover(a, &list);
                }
                let Some((rest, _, _)) = &body else { continue };
                seq += 1;
                in_flight.push_back((seq, Instant::now()));
                tx.send(frame(seq, rest)).await.context("outbox closed")?;
            }
            r = truth_rx.changed() => {
                r?;
                alert_at.get_or_insert(tokio::time::Instant::now() + ALERT_AFTER);
            }
            () = sleep_until(alert_at), if alert_at.is_some() => {
                alert_at = None;
                let view = cluster.truth.view();
                for (slot, s) in slots.iter().enumerate() {
                    let now = reachable(&view, node, s);
                    if alerted.get(slot).copied() == Some(now) {
                        continue;
                    }
                    alerted[slot] = now;
                    let alert = AgentMessage {
                        msg: Some(agent_message::Msg::Alert(v1::Alert {
                            target_id: s.id,
                            slot: slot as u32,
                            generation,
                            reachable: now,
                            consecutive_losses: if now { 0 } else { 6 },
                            at_unix_ms: unix_ms(),
                        })),
                    };
                    cluster.alerts.fetch_add(1, Ordering::Relaxed);
                    tx.send(alert.encode_to_vec().into()).await.context("outbox closed")?;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether `s` answers `node` now (targets the model does not know answer).
fn reachable(view: &super::truth::View<'_>, node: usize, s: &Slot) -> bool {
    s.node == usize::MAX || view.rtt_us(node, s.node).is_some()
}

/// One target's window from the truth: every probe answered at the model's RTT, or all lost.
fn target_stats(
    cluster: &Cluster,
    view: &super::truth::View<'_>,
    node: usize,
    slot: usize,
    s: &Slot,
) -> v1::TargetStats {
    let rtt = if s.node == usize::MAX {
        Some(250)
    } else {
        view.rtt_us(node, s.node)
    };
    v1::TargetStats {
        target_id: s.id,
        slot: slot as u32,
        sent: PROBES,
        received: if rtt.is_some() { PROBES } else { 0 },
        lost: if rtt.is_some() { 0 } else { PROBES },
        rtt: rtt.map(|us| cluster.histogram(us)),
        ..v1::TargetStats::default()
    }
}

/// `AgentMessage { report { seq, rest... } }` where `rest` is a Report encoded with seq 0 (so
/// without field 1).
pub(crate) fn frame(seq: u64, rest: &Bytes) -> Bytes {
    let inner = 1 + prost::encoding::encoded_len_varint(seq) + rest.len();
    let mut b = BytesMut::with_capacity(inner + 11);
    b.put_u8(0x12);
    prost::encoding::encode_varint(inner as u64, &mut b);
    b.put_u8(0x08);
    prost::encoding::encode_varint(seq, &mut b);
    b.put_slice(rest);
    b.freeze()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}
