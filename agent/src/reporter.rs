//! `echomesh-agent run`: the Session stream to the aggregator.
//!
//! One loop owns everything, so there is no shared state to lock: it says Hello, applies each
//! Assignment to the probe engine, takes a window every report interval and sends it as a Report,
//! forwards the engine's reachability flips at once as Alerts, and removes reports from the
//! [`ReplayBuffer`] when the aggregator acks them.
//!
//! Why the buffer and the replay rule: the aggregator may restart (rolling update) while probing
//! goes on. Windows keep being taken on schedule while disconnected and wait, bounded, in the
//! buffer (the oldest are dropped first, and counted). After a reconnect the buffer is replayed only
//! once the new session has an Assignment that holds every target the buffered reports mention
//! (or, at the latest, a grace period after the session opened): a restarted aggregator has no
//! edges for this agent until it assigned them, and its first assignments hold only the peers that
//! reconnected so far, so replaying earlier would drop the entries for the others. Target ids are
//! stable across aggregators, so old reports land on the right edges, and the aggregator drops
//! duplicates by sequence number. New reports wait behind the replay to keep sequence order.
//! Reconnects back off exponentially with jitter so a restarted aggregator is not hit by every agent
//! at the same instant.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use echomesh_proto::v1::{
    self, AgentMessage, AggregatorMessage, Network, agent_message,
    agent_service_client::AgentServiceClient, aggregator_message,
};
use rand::Rng as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::prober::{self, EngineHandle, ProbeSettings, TargetSpec, TargetWindow};

/// Which network the agent probes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkArg {
    /// The pod network (DaemonSet without hostNetwork).
    Pod,
    /// The node's host network.
    Host,
}

/// Arguments of `echomesh-agent run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Aggregator URL: http://HOST:PORT or unix:///path/to/socket.
    #[arg(long, env = "ECHOMESH_AGGREGATOR")]
    pub aggregator: String,
    /// This node's name (from the downward API in Kubernetes).
    #[arg(long, env = "ECHOMESH_NODE")]
    pub node: String,
    /// This pod's name.
    #[arg(long, env = "ECHOMESH_POD", default_value = "")]
    pub pod: String,
    /// The network this agent probes from.
    #[arg(long, env = "ECHOMESH_NETWORK", value_enum)]
    pub network: NetworkArg,
    /// This agent's addresses, which peers probe (repeat or comma-separate; 1 to 16).
    #[arg(
        long = "address",
        env = "ECHOMESH_ADDRESS",
        value_delimiter = ',',
        required = true
    )]
    pub addresses: Vec<IpAddr>,
    /// Unacknowledged reports kept for replay (oldest dropped first).
    #[arg(long, env = "ECHOMESH_REPLAY_BUFFER", default_value_t = 300)]
    pub replay_buffer: usize,
    /// Longest wait between reconnect attempts, in milliseconds.
    #[arg(long, env = "ECHOMESH_MAX_BACKOFF_MS", default_value_t = 30_000)]
    pub max_backoff_ms: u64,
    /// Where to serve /metrics and /healthz.
    #[arg(long, env = "ECHOMESH_HTTP_LISTEN", default_value = "0.0.0.0:7072")]
    pub http_listen: std::net::SocketAddr,
}

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The aggregator URL is unusable.
    #[error("aggregator URL {0:?}: must be http://HOST:PORT or unix:///path")]
    Url(String),
    /// The probe engine could not start (e.g. no CAP_NET_RAW).
    #[error(transparent)]
    Engine(#[from] prober::EngineError),
    /// Too many or no addresses.
    #[error("give 1 to 16 --address values, got {0}")]
    Addresses(usize),
    /// The metrics port could not be bound.
    #[error("cannot serve /metrics on {addr}: {source}")]
    Bind {
        /// The --http-listen address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Unacknowledged reports, oldest first, bounded.
#[derive(Debug)]
pub struct ReplayBuffer {
    reports: VecDeque<v1::Report>,
    cap: usize,
    dropped: u64,
}

impl ReplayBuffer {
    /// A buffer holding at most `cap` reports (at least 1).
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            reports: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    /// Adds a report, dropping the oldest when full.
    pub fn push(&mut self, r: v1::Report) {
        if self.reports.len() == self.cap {
            self.reports.pop_front();
            self.dropped += 1;
        }
        self.reports.push_back(r);
    }

    /// Forgets every report up to and including `seq` (the aggregator merges in order).
    pub fn ack(&mut self, seq: u64) {
        while self.reports.front().is_some_and(|r| r.seq <= seq) {
            self.reports.pop_front();
        }
    }

    /// Reports waiting for an ack, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &v1::Report> {
        self.reports.iter()
    }

    /// Number waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.reports.len()
    }

    /// True when nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    /// Reports dropped because the buffer was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Exponential backoff with equal jitter: the wait is in `[d/2, d]`, `d` doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `min`, never waits longer than `max`.
    #[must_use]
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max: max.max(min),
        }
    }

    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = d / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros().max(1) as u64);
        half + Duration::from_micros(jitter)
    }

    /// After a successful session.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The assignment in force.
#[derive(Debug, Default)]
struct Current {
    generation: u64,
    slots: HashMap<u64, u32>,
    report_interval: Duration,
}

/// Converts an engine window to the wire form; `None` for a target no longer assigned.
fn target_stats(w: &TargetWindow, cur: &Current) -> Option<v1::TargetStats> {
    let slot = *cur.slots.get(&w.id)?;
    let e = &w.stats.errors;
    Some(v1::TargetStats {
        target_id: w.id,
        slot,
        sent: w.stats.sent,
        received: w.stats.received,
        lost: w.stats.lost,
        duplicates: w.stats.duplicates,
        reordered: w.stats.reordered,
        late: w.stats.late,
        errors: Some(v1::IcmpErrors {
            dest_unreachable: e.net_unreachable
                + e.host_unreachable
                + e.protocol_unreachable
                + e.port_unreachable
                + e.frag_needed
                + e.admin_prohibited,
            time_exceeded: e.time_exceeded,
            parameter_problem: 0,
            other: e.other,
        }),
        rtt: Some(v1::Histogram::from(&w.stats.rtt)),
    })
}

/// Probe settings and targets from an assignment (unparseable addresses are skipped, logged).
fn engine_input(a: &v1::Assignment) -> (ProbeSettings, Vec<TargetSpec>) {
    let ms = |v: u32, d: u64| Duration::from_millis(if v == 0 { d } else { u64::from(v) });
    let settings = ProbeSettings {
        interval: ms(a.probe_interval_ms, 1000),
        timeout: ms(a.timeout_ms, 1000),
        payload_size: a.payload_sizes.first().map_or(56, |&p| p as usize),
        down_after: if a.down_after == 0 { 3 } else { a.down_after },
    };
    let targets = a
        .targets
        .iter()
        .filter_map(|t| match t.address.parse() {
            Ok(addr) => Some(TargetSpec { id: t.id, addr }),
            Err(_) => {
                tracing::warn!(address = %t.address, "assignment target is not an IP address; skipped");
                None
            }
        })
        .collect();
    (settings, targets)
}

/// Connects to `url` (http:// or unix://).
pub async fn connect(url: &str, timeout: Duration) -> Result<Channel, ConnectError> {
    if let Some(path) = url.strip_prefix("unix://") {
        let path = path.to_string();
        return Ok(Endpoint::from_static("http://localhost")
            .connect_timeout(timeout)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await?);
    }
    Ok(Endpoint::from_shared(url.to_string())
        .map_err(|_| ConnectError::Url)?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Unusable URL.
    #[error("unusable URL")]
    Url,
    /// Transport error.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The session was refused.
    #[error("session refused: {0}")]
    Status(#[from] tonic::Status),
}

struct Session {
    tx: mpsc::Sender<AgentMessage>,
    rx: Streaming<AggregatorMessage>,
    /// An assignment arrived on this session.
    assigned: bool,
    /// The buffer was replayed on this session (reports flow live from then on).
    replayed: bool,
    opened: tokio::time::Instant,
}

/// Longest a new session waits for an assignment covering the buffered reports before replaying
/// anyway: a peer that never comes back must not hold the buffer forever.
fn replay_grace(report_interval: Duration) -> Duration {
    (report_interval * 3).max(Duration::from_secs(2))
}

/// True when every target in every buffered report is in the current assignment.
fn buffer_covered(buffer: &ReplayBuffer, current: &Current) -> bool {
    buffer.pending().all(|r| {
        r.targets
            .iter()
            .all(|t| current.slots.contains_key(&t.target_id))
    })
}

/// Whether an assigned session open for `open_for` may replay `buffer` under `current`.
fn may_replay(open_for: Duration, buffer: &ReplayBuffer, current: &Current) -> bool {
    buffer_covered(buffer, current) || open_for >= replay_grace(current.report_interval)
}

/// Replays the buffer on `s` once it is assigned and the replay cannot lose entries (or the grace
/// period is over).
async fn replay_when_ready(s: &mut Session, buffer: &ReplayBuffer, current: &Current) {
    if s.replayed || !s.assigned || !may_replay(s.opened.elapsed(), buffer, current) {
        return;
    }
    s.replayed = true;
    for r in buffer.pending() {
        if s.tx.send(report_msg(r)).await.is_err() {
            break;
        }
    }
}

async fn open_session(url: &str, hello: v1::Hello) -> Result<Session, ConnectError> {
    let ch = connect(url, Duration::from_secs(5)).await?;
    let (tx, rx) = mpsc::channel(256);
    let _ = tx
        .send(AgentMessage {
            msg: Some(agent_message::Msg::Hello(hello)),
        })
        .await;
    let rx = AgentServiceClient::new(ch)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20)
        .session(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok(Session {
        tx,
        rx,
        assigned: false,
        replayed: false,
        opened: tokio::time::Instant::now(),
    })
}

fn report_msg(r: &v1::Report) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Report(r.clone())),
    }
}

/// Runs the agent until `shutdown` resolves, serving `/metrics` and `/healthz` on
/// `--http-listen`.
pub async fn run(args: RunArgs, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let listener = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: args.http_listen,
            source,
        })?;
    let metrics = crate::metrics::AgentMetrics::new();
    let http = tokio::spawn(crate::metrics::serve(listener, metrics.clone()));
    let r = run_with(args, metrics, shutdown).await;
    http.abort();
    r
}

/// [`run`] without the HTTP server: the run loop feeds `metrics` (tests and embedding serve it).
pub async fn run_with(
    args: RunArgs,
    metrics: crate::metrics::AgentMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    if args.addresses.is_empty() || args.addresses.len() > 16 {
        return Err(RunError::Addresses(args.addresses.len()));
    }
    if !(args.aggregator.starts_with("http://") || args.aggregator.starts_with("unix://")) {
        return Err(RunError::Url(args.aggregator.clone()));
    }
    let hello = v1::Hello {
        node: args.node.clone(),
        pod: args.pod.clone(),
        network: match args.network {
            NetworkArg::Pod => Network::Pod,
            NetworkArg::Host => Network::Host,
        } as i32,
        addresses: args.addresses.iter().map(ToString::to_string).collect(),
        version: env!("CARGO_PKG_VERSION").into(),
        boot_id: rand::random(),
    };
    let mut backoff = Backoff::new(
        Duration::from_millis(100),
        Duration::from_millis(args.max_backoff_ms.max(100)),
    );
    let mut buffer = ReplayBuffer::new(args.replay_buffer);
    let mut engine: Option<EngineHandle> = None;
    let mut current = Current::default();
    let mut session: Option<Session> = None;
    let mut reconnect_at = tokio::time::Instant::now();
    let mut seq = 0u64;
    let mut tick: Option<tokio::time::Interval> = None;
    let mut window_start = std::time::SystemTime::now();
    tokio::pin!(shutdown);

    loop {
        enum Ev {
            Shutdown,
            Tick,
            Flip(prober::TargetFlip),
            Msg(Result<Option<AggregatorMessage>, tonic::Status>),
            Reconnect,
        }
        let disconnected = session.is_none();
        let ev = tokio::select! {
            () = &mut shutdown => Ev::Shutdown,
            _ = async { match tick.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => Ev::Tick,
            Some(f) = async { match engine.as_mut() { Some(e) => e.flips().recv().await, None => std::future::pending().await } } => Ev::Flip(f),
            m = async { match session.as_mut() { Some(s) => s.rx.message().await, None => std::future::pending().await } } => Ev::Msg(m),
            () = async { if disconnected { tokio::time::sleep_until(reconnect_at).await } else { std::future::pending().await } } => Ev::Reconnect,
        };
        match ev {
            Ev::Shutdown => break,
            Ev::Reconnect => match open_session(&args.aggregator, hello.clone()).await {
                Ok(s) => {
                    tracing::info!(aggregator = %args.aggregator, buffered = buffer.len(), "session open");
                    session = Some(s);
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(aggregator = %args.aggregator, error = %e, retry_in_ms = wait.as_millis() as u64, "cannot open session");
                    reconnect_at = tokio::time::Instant::now() + wait;
                }
            },
            Ev::Msg(Ok(Some(m))) => match m.msg {
                Some(aggregator_message::Msg::Assignment(a)) => {
                    let (settings, targets) = engine_input(&a);
                    match engine.as_ref() {
                        Some(e) => {
                            if let Err(err) = e.assign(settings, targets) {
                                tracing::warn!(error = %err, "assignment refused by the engine; keeping the old one");
                            }
                        }
                        None => engine = Some(prober::start(settings, targets)?),
                    }
                    let interval = Duration::from_millis(u64::from(a.report_interval_ms.max(100)));
                    if tick.is_none() || current.report_interval != interval {
                        let mut t = tokio::time::interval_at(
                            tokio::time::Instant::now() + interval,
                            interval,
                        );
                        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        tick = Some(t);
                    }
                    current = Current {
                        generation: a.generation,
                        slots: a
                            .targets
                            .iter()
                            .enumerate()
                            .map(|(i, t)| (t.id, i as u32))
                            .collect(),
                        report_interval: interval,
                    };
                    tracing::info!(
                        generation = a.generation,
                        targets = a.targets.len(),
                        "assignment applied"
                    );
                    if let Some(s) = session.as_mut() {
                        if !s.assigned {
                            s.assigned = true;
                            backoff.reset();
                        }
                        replay_when_ready(s, &buffer, &current).await;
                    }
                }
                Some(aggregator_message::Msg::Ack(ack)) => buffer.ack(ack.seq),
                None => {}
            },
            Ev::Msg(end) => {
                match end {
                    Err(st) => {
                        tracing::warn!(code = ?st.code(), message = st.message(), "session ended by the aggregator")
                    }
                    _ => tracing::warn!("session closed"),
                }
                session = None;
                reconnect_at = tokio::time::Instant::now() + backoff.next_wait();
            }
            Ev::Flip(f) => {
                if let (Some(s), Some(&slot)) = (session.as_ref(), current.slots.get(&f.id)) {
                    let alert = v1::Alert {
                        target_id: f.id,
                        slot,
                        generation: current.generation,
                        reachable: f.reachable,
                        consecutive_losses: f.consecutive_losses,
                        at_unix_ms: unix_ms(std::time::SystemTime::now()),
                    };
                    let _ = s.tx.try_send(AgentMessage {
                        msg: Some(agent_message::Msg::Alert(alert)),
                    });
                }
            }
            Ev::Tick => {
                let Some(e) = engine.as_ref() else { continue };
                let windows = e.take_window().await;
                metrics.record_windows(&windows);
                metrics.set_engine(e.counters().await);
                metrics.set_targets(current.slots.len());
                let now = std::time::SystemTime::now();
                seq += 1;
                let report = v1::Report {
                    seq,
                    generation: current.generation,
                    window_start_unix_ms: unix_ms(window_start),
                    window_ms: now
                        .duration_since(window_start)
                        .map_or(0, |d| d.as_millis().min(u128::from(u32::MAX)) as u32),
                    targets: windows
                        .iter()
                        .filter_map(|w| target_stats(w, &current))
                        .collect(),
                };
                window_start = now;
                if let Some(s) = session.as_mut() {
                    // Past the grace period the buffer goes out even if a peer is still missing.
                    replay_when_ready(s, &buffer, &current).await;
                }
                if let Some(s) = session.as_ref()
                    && s.replayed
                {
                    let _ = s.tx.try_send(report_msg(&report));
                }
                buffer.push(report);
                if buffer.dropped() > 0 && buffer.dropped() % 60 == 1 {
                    tracing::warn!(
                        dropped = buffer.dropped(),
                        "replay buffer full; oldest reports dropped"
                    );
                }
            }
        }
    }
    if let Some(e) = engine {
        e.shutdown().await;
    }
    Ok(())
}

fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(seq: u64) -> v1::Report {
        v1::Report {
            seq,
            ..v1::Report::default()
        }
    }

    #[test]
    fn buffer_is_bounded_and_acks_are_cumulative() {
        let mut b = ReplayBuffer::new(3);
        for s in 1..=5 {
            b.push(rep(s));
        }
        assert_eq!(b.dropped(), 2);
        assert_eq!(b.pending().map(|r| r.seq).collect::<Vec<_>>(), [3, 4, 5]);
        b.ack(4);
        assert_eq!(b.pending().map(|r| r.seq).collect::<Vec<_>>(), [5]);
        b.ack(4);
        assert_eq!(b.len(), 1);
        b.ack(9);
        assert!(b.is_empty());
    }

    #[test]
    fn replay_waits_for_an_assignment_covering_the_buffer_or_the_grace() {
        let entry = |id: u64| v1::TargetStats {
            target_id: id,
            ..v1::TargetStats::default()
        };
        let mut buffer = ReplayBuffer::new(8);
        buffer.push(v1::Report {
            seq: 1,
            targets: vec![entry(10), entry(20)],
            ..v1::Report::default()
        });
        let current = |ids: &[u64]| Current {
            generation: 1,
            slots: ids
                .iter()
                .enumerate()
                .map(|(i, &id)| (id, i as u32))
                .collect(),
            report_interval: Duration::from_secs(1),
        };
        let early = Duration::from_millis(100);
        // Only peer 10 is back: a replay now would drop the entries for 20.
        assert!(!may_replay(early, &buffer, &current(&[10])));
        // Both are back: replay at once.
        assert!(may_replay(early, &buffer, &current(&[10, 20, 30])));
        // A peer that never returns holds the buffer only for the grace period.
        let grace = replay_grace(Duration::from_secs(1));
        assert_eq!(grace, Duration::from_secs(3));
        assert!(may_replay(grace, &buffer, &current(&[10])));
        // Nothing buffered: nothing to wait for.
        assert!(may_replay(early, &ReplayBuffer::new(1), &current(&[])));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let waits: Vec<Duration> = (0..5).map(|_| b.next_wait()).collect();
        let caps = [100u64, 200, 400, 400, 400];
        for (w, cap) in waits.iter().zip(caps) {
            assert!(*w >= Duration::from_millis(cap / 2), "{w:?}");
            assert!(*w <= Duration::from_millis(cap), "{w:?}");
        }
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100));
    }

    #[test]
    fn stats_of_unassigned_targets_are_not_reported() {
        let cur = Current {
            generation: 3,
            slots: [(7u64, 0u32)].into_iter().collect(),
            report_interval: Duration::from_secs(1),
        };
        let w = |id| TargetWindow {
            id,
            addr: "127.0.0.1".parse().expect("ip"),
            stats: crate::stats::TargetStats::default(),
        };
        assert_eq!(target_stats(&w(7), &cur).map(|t| t.slot), Some(0));
        assert!(target_stats(&w(8), &cur).is_none());
    }

    #[test]
    fn assignment_becomes_engine_input() {
        let a = v1::Assignment {
            generation: 1,
            targets: vec![
                v1::Target {
                    id: 1,
                    address: "127.0.0.2".into(),
                    ..Default::default()
                },
                v1::Target {
                    id: 2,
                    address: "garbage".into(),
                    ..Default::default()
                },
            ],
            probe_interval_ms: 50,
            timeout_ms: 0,
            payload_sizes: vec![],
            report_interval_ms: 200,
            down_after: 0,
        };
        let (s, t) = engine_input(&a);
        assert_eq!(s.interval, Duration::from_millis(50));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!(s.payload_size, 56);
        assert_eq!(s.down_after, 3);
        assert_eq!(t.len(), 1);
    }
}
