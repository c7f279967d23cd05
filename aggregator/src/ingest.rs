//! `AgentService`: agent sessions, pinglist assignments, report merge and acks.
//!
//! One task per session reads the agent's stream; everything it writes back (assignments, acks,
//! a final error status) goes through one bounded channel, so a slow agent slows only itself.
//! The first message must be `Hello`; `(node, network)` names the agent and a newer session for the
//! same pair replaces the older one (which is closed with ABORTED and an event says so).
//! Pinglists are recomputed by one debounced task whenever membership changes, so a hundred
//! agents starting together cause one round of assignments, not a hundred.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use echomesh_proto::v1::{
    self, AgentMessage, AggregatorMessage, Network, agent_message,
    agent_service_server::AgentService, aggregator_message, event::Kind,
};
use futures::Stream;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::graph::{AgentInfo, AgentKey, Graph, MergeOutcome};
use crate::pinglist::{Peer, PinglistSource};

/// What agents are told to do, and session limits.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Time between probes to one target.
    pub probe_interval: Duration,
    /// A probe without reply after this is lost.
    pub probe_timeout: Duration,
    /// ICMP payload sizes to cycle through.
    pub payload_sizes: Vec<u32>,
    /// Time between reports.
    pub report_interval: Duration,
    /// Consecutive losses before an agent alerts.
    pub down_after: u32,
    /// Quiet time after a membership change before pinglists are recomputed.
    pub assign_debounce: Duration,
    /// A session must say Hello within this.
    pub hello_timeout: Duration,
    /// Outgoing messages buffered per session.
    pub session_buffer: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_millis(100),
            probe_timeout: Duration::from_secs(1),
            payload_sizes: vec![56],
            report_interval: Duration::from_secs(1),
            down_after: 3,
            assign_debounce: Duration::from_millis(200),
            hello_timeout: Duration::from_secs(10),
            session_buffer: 256,
        }
    }
}

/// Why ingest refused a session or a message (the `reason` label of
/// `echomesh_ingest_errors_total`); entries the graph ignores are counted in
/// [`crate::graph::GraphCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestErrorReason {
    /// No Hello within the hello timeout.
    HelloTimeout,
    /// The first message was not a Hello.
    FirstNotHello,
    /// The Hello did not validate.
    BadHello,
    /// A second Hello in one session.
    RepeatedHello,
    /// A report refused as a whole (sequence 0).
    BadReport,
    /// A message over the size limit.
    MessageTooLarge,
    /// The agent's stream failed otherwise.
    StreamError,
}

impl IngestErrorReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 7] = [
        Self::HelloTimeout,
        Self::FirstNotHello,
        Self::BadHello,
        Self::RepeatedHello,
        Self::BadReport,
        Self::MessageTooLarge,
        Self::StreamError,
    ];

    /// The metric label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::HelloTimeout => "hello_timeout",
            Self::FirstNotHello => "first_not_hello",
            Self::BadHello => "bad_hello",
            Self::RepeatedHello => "repeated_hello",
            Self::BadReport => "bad_report",
            Self::MessageTooLarge => "message_too_large",
            Self::StreamError => "stream_error",
        }
    }
}

type Outbox = mpsc::Sender<Result<AggregatorMessage, Status>>;

#[derive(Debug)]
struct SessionHandle {
    id: u64,
    tx: Outbox,
    close: Arc<Notify>,
    /// Fingerprint of the last assignment sent on this session (0: none yet), so an unchanged
    /// pinglist is not re-sent, while a new session or an expected-down flip always is.
    sent: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Inner {
    graph: Arc<Graph>,
    cfg: IngestConfig,
    pinglist: Arc<dyn PinglistSource>,
    sessions: DashMap<AgentKey, SessionHandle>,
    next_session: AtomicU64,
    generation: AtomicU64,
    changed: Notify,
    closing: tokio::sync::watch::Sender<bool>,
    errors: [AtomicU64; IngestErrorReason::ALL.len()],
}

/// The agent-facing service (cheap to clone).
#[derive(Debug, Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

/// Why a Hello was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HelloError {
    /// Node name missing or unusable.
    #[error("hello: node name must be 1..=253 printable characters, got {0:?}")]
    BadNode(String),
    /// Network not POD or HOST.
    #[error("hello: network must be NETWORK_POD or NETWORK_HOST, got {0}")]
    BadNetwork(i32),
    /// An address that does not parse.
    #[error("hello: {0:?} is not an IP address")]
    BadAddress(String),
    /// No addresses, or too many.
    #[error("hello: an agent announces 1..=16 addresses, got {0}")]
    AddressCount(usize),
}

/// Checks a Hello and turns it into the graph's types.
pub fn validate_hello(h: &v1::Hello) -> Result<(AgentKey, AgentInfo), HelloError> {
    if h.node.is_empty() || h.node.len() > 253 || h.node.chars().any(char::is_control) {
        return Err(HelloError::BadNode(h.node.chars().take(64).collect()));
    }
    let network = match Network::try_from(h.network) {
        Ok(n @ (Network::Pod | Network::Host)) => n,
        _ => return Err(HelloError::BadNetwork(h.network)),
    };
    if h.addresses.is_empty() || h.addresses.len() > 16 {
        return Err(HelloError::AddressCount(h.addresses.len()));
    }
    let mut addresses = Vec::with_capacity(h.addresses.len());
    for a in &h.addresses {
        let ip: IpAddr = a
            .parse()
            .map_err(|_| HelloError::BadAddress(a.chars().take(64).collect()))?;
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    Ok((
        AgentKey {
            node: h.node.as_str().into(),
            network,
        },
        AgentInfo {
            pod: h.pod.chars().take(253).collect(),
            addresses,
            version: h.version.chars().take(64).collect(),
            boot_id: h.boot_id,
            connected: true,
            disconnected_at: None,
        },
    ))
}

impl Ingest {
    /// A service over `graph` assigning pinglists from `pinglist`.
    #[must_use]
    pub fn new(graph: Arc<Graph>, cfg: IngestConfig, pinglist: Arc<dyn PinglistSource>) -> Self {
        Self {
            inner: Arc::new(Inner {
                graph,
                cfg,
                pinglist,
                sessions: DashMap::new(),
                next_session: AtomicU64::new(1),
                // Distinct across restarts, so a report replayed from a previous aggregator's
                // assignment never looks like one of ours.
                generation: AtomicU64::new(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as u64),
                ),
                changed: Notify::new(),
                closing: tokio::sync::watch::Sender::new(false),
                errors: Default::default(),
            }),
        }
    }

    /// Errors counted so far, by reason (for `/metrics`).
    #[must_use]
    pub fn errors(&self) -> [(IngestErrorReason, u64); IngestErrorReason::ALL.len()] {
        IngestErrorReason::ALL.map(|r| (r, self.inner.errors[r as usize].load(Ordering::Relaxed)))
    }

    fn count_error(&self, r: IngestErrorReason) {
        self.inner.errors[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Number of open sessions.
    #[must_use]
    pub fn connected(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Ends every session (with UNAVAILABLE) and every stream that watches [`Ingest::closing`]:
    /// long-lived streams would otherwise hold a graceful shutdown open forever.
    pub fn close_all(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`Ingest::close_all`] was called.
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// Asks for the pinglists to be recomputed (after the debounce).
    pub fn membership_changed(&self) {
        self.inner.changed.notify_one();
    }

    /// Recomputes pinglists after membership changes until `shutdown` resolves.
    pub async fn run_assigner(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = self.inner.changed.notified() => {}
                () = &mut shutdown => return,
            }
            loop {
                tokio::select! {
                    () = tokio::time::sleep(self.inner.cfg.assign_debounce) => break,
                    () = self.inner.changed.notified() => {}
                    () = &mut shutdown => return,
                }
            }
            self.reassign_all().await;
        }
    }

    /// Sends every connected agent its current pinglist when it changed.
    pub async fn reassign_all(&self) {
        let inner = &self.inner;
        let mut live: Vec<(AgentKey, Outbox, Arc<AtomicU64>)> = inner
            .sessions
            .iter()
            .map(|s| {
                (
                    s.key().clone(),
                    s.value().tx.clone(),
                    s.value().sent.clone(),
                )
            })
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        let peers: Vec<Peer> = live
            .iter()
            .filter_map(|(k, _, _)| {
                let a = inner.graph.agent(k)?;
                let addresses = a.info.lock().addresses.clone();
                Some(Peer {
                    key: k.clone(),
                    addresses,
                })
            })
            .collect();
        for (key, tx, sent) in live {
            let Some(agent) = inner.graph.agent(&key) else {
                continue;
            };
            let planned = inner.pinglist.targets(&key, &peers);
            let ids: Vec<u64> = planned.iter().map(|t| t.id).collect();
            let print = fingerprint(&planned);
            if sent.load(Ordering::Relaxed) == print {
                continue;
            }
            sent.store(print, Ordering::Relaxed);
            let generation = inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
            inner
                .graph
                .apply_assignment(&agent, generation, &ids, inner.cfg.report_interval);
            let msg = AggregatorMessage {
                msg: Some(aggregator_message::Msg::Assignment(v1::Assignment {
                    generation,
                    targets: planned
                        .into_iter()
                        .map(|t| v1::Target {
                            id: t.id,
                            address: t.addr.to_string(),
                            network: t.network as i32,
                            node: t.node.to_string(),
                            expected_down: t.expected_down,
                        })
                        .collect(),
                    probe_interval_ms: ms(inner.cfg.probe_interval),
                    timeout_ms: ms(inner.cfg.probe_timeout),
                    payload_sizes: inner.cfg.payload_sizes.clone(),
                    report_interval_ms: ms(inner.cfg.report_interval),
                    down_after: inner.cfg.down_after,
                })),
            };
            if !matches!(
                tokio::time::timeout(Duration::from_secs(5), tx.send(Ok(msg))).await,
                Ok(Ok(()))
            ) {
                // Not delivered: the next round tries again instead of skipping it as unchanged.
                sent.store(0, Ordering::Relaxed);
                tracing::warn!(agent = %key, "agent did not take its assignment within 5s");
            }
        }
    }

    async fn run_session(self, mut inbound: Streaming<AgentMessage>, tx: Outbox) {
        let inner = &self.inner;
        let first = tokio::time::timeout(inner.cfg.hello_timeout, inbound.message()).await;
        let hello = match first {
            Err(_) => {
                self.count_error(IngestErrorReason::HelloTimeout);
                let _ = tx
                    .send(Err(Status::deadline_exceeded(
                        "no Hello within the hello timeout",
                    )))
                    .await;
                return;
            }
            Ok(Err(status)) => {
                let _ = tx.send(Err(self.map_inbound_error(status))).await;
                return;
            }
            Ok(Ok(None)) => return,
            Ok(Ok(Some(AgentMessage {
                msg: Some(agent_message::Msg::Hello(h)),
            }))) => h,
            Ok(Ok(Some(other))) => {
                self.count_error(IngestErrorReason::FirstNotHello);
                let what = match other.msg {
                    Some(agent_message::Msg::Report(_)) => "Report",
                    Some(agent_message::Msg::Alert(_)) => "Alert",
                    _ => "an empty message",
                };
                let _ = tx
                    .send(Err(Status::failed_precondition(format!(
                        "the first message of a session must be Hello, got {what}"
                    ))))
                    .await;
                return;
            }
        };
        let (key, info) = match validate_hello(&hello) {
            Ok(v) => v,
            Err(e) => {
                self.count_error(IngestErrorReason::BadHello);
                let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
                return;
            }
        };
        let id = inner.next_session.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        let replaced = inner.sessions.insert(
            key.clone(),
            SessionHandle {
                id,
                tx: tx.clone(),
                close: close.clone(),
                sent: Arc::new(AtomicU64::new(0)),
            },
        );
        let agent = inner.graph.upsert_agent(key.clone(), info);
        let events = &inner.graph.events;
        if let Some(old) = replaced {
            let _ = old.tx.try_send(Err(Status::aborted(
                "replaced by a newer session for the same node and network",
            )));
            old.close.notify_one();
            tracing::warn!(agent = %key, "a newer session replaced the existing one");
            events.agent_event(
                Kind::AgentReplaced,
                &key,
                format!("a newer session replaced session {} of {key}", old.id),
            );
        } else {
            events.agent_event(Kind::AgentConnected, &key, String::new());
        }
        tracing::info!(agent = %key, session = id, "agent connected");
        self.membership_changed();

        let closing = self.closing();
        tokio::pin!(closing);
        loop {
            let msg = tokio::select! {
                () = close.notified() => break,
                () = &mut closing => {
                    let _ = tx.try_send(Err(Status::unavailable("aggregator shutting down")));
                    break;
                }
                m = inbound.message() => m,
            };
            let msg = match msg {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(status) => {
                    let _ = tx.send(Err(self.map_inbound_error(status))).await;
                    break;
                }
            };
            match msg.msg {
                Some(agent_message::Msg::Report(r)) => match inner.graph.merge_report(&agent, &r) {
                    Ok(MergeOutcome::Merged { .. } | MergeOutcome::Duplicate) => {
                        let ack = AggregatorMessage {
                            msg: Some(aggregator_message::Msg::Ack(v1::Ack { seq: r.seq })),
                        };
                        if tx.send(Ok(ack)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        self.count_error(IngestErrorReason::BadReport);
                        let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
                        break;
                    }
                },
                Some(agent_message::Msg::Alert(a)) => {
                    inner.graph.apply_alert(&agent, &a);
                }
                Some(agent_message::Msg::Hello(_)) => {
                    self.count_error(IngestErrorReason::RepeatedHello);
                    let _ = tx
                        .send(Err(Status::failed_precondition(
                            "Hello may only be the first message of a session",
                        )))
                        .await;
                    break;
                }
                None => {}
            }
        }

        let still_current = inner.sessions.remove_if(&key, |_, s| s.id == id).is_some();
        if still_current {
            inner.graph.disconnect_agent(&key);
            events.agent_event(Kind::AgentDisconnected, &key, String::new());
            tracing::info!(agent = %key, session = id, "agent disconnected");
            self.membership_changed();
        }
    }
}

impl Ingest {
    /// Counts a failed inbound stream and maps it with [`map_inbound_error`].
    fn map_inbound_error(&self, status: Status) -> Status {
        let mapped = map_inbound_error(status);
        self.count_error(if mapped.code() == Code::ResourceExhausted {
            IngestErrorReason::MessageTooLarge
        } else {
            IngestErrorReason::StreamError
        });
        mapped
    }
}

/// A non-zero digest of what an assignment tells the agent about its targets.
fn fingerprint(planned: &[crate::pinglist::PlannedTarget]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in planned {
        (t.id, t.expected_down).hash(&mut h);
    }
    planned.len().hash(&mut h);
    h.finish().max(1)
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// tonic reports an oversized message as OUT_OF_RANGE; the protocol promises RESOURCE_EXHAUSTED.
fn map_inbound_error(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("too large") {
        Status::resource_exhausted(status.message().to_string())
    } else {
        status
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<AggregatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for Ingest {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (tx, rx) = mpsc::channel(self.inner.cfg.session_buffer.max(4));
        tokio::spawn(self.clone().run_session(request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(node: &str, network: Network, addrs: &[&str]) -> v1::Hello {
        v1::Hello {
            node: node.into(),
            network: network as i32,
            addresses: addrs.iter().map(|s| (*s).to_string()).collect(),
            ..v1::Hello::default()
        }
    }

    #[test]
    fn hello_validation_messages() {
        assert_eq!(
            validate_hello(&hello("", Network::Pod, &["10.0.0.1"])).map(|_| ()),
            Err(HelloError::BadNode(String::new()))
        );
        let e = validate_hello(&hello("n", Network::Unspecified, &["10.0.0.1"]))
            .map(|_| ())
            .expect_err("bad network");
        assert_eq!(
            e.to_string(),
            "hello: network must be NETWORK_POD or NETWORK_HOST, got 0"
        );
        let e = validate_hello(&hello("n", Network::Pod, &["10.0.0.999"]))
            .map(|_| ())
            .expect_err("bad address");
        assert_eq!(e.to_string(), "hello: \"10.0.0.999\" is not an IP address");
        assert_eq!(
            validate_hello(&hello("n", Network::Pod, &[])).map(|_| ()),
            Err(HelloError::AddressCount(0))
        );
        let (k, i) = validate_hello(&hello("n", Network::Host, &["::1", "::1"])).expect("ok");
        assert_eq!(k.network, Network::Host);
        assert_eq!(i.addresses.len(), 1);
    }
}
