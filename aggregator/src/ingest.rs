//! `AgentService`: agent sessions, pinglist assignments, report merge and acks.
//!
//! One task per session reads the agent's stream; everything it writes back (assignments, acks,
//! a final error status) goes through one bounded channel, so a slow agent slows only itself.
//! The first message must be `Hello`; `(node, network)` names the agent and a newer session for the
//! same pair replaces the older one (which is closed with ABORTED and an event says so).
//! Pinglists are recomputed by one debounced task whenever membership changes, so a hundred
//! agents starting together cause one round of assignments, not a hundred.
//!
//! - [`hello`]: what a valid Hello is.
//! - [`session`]: the per-session loop and the `AgentService` implementation.
//! - [`inbound`]: the Session route the server runs, which leaves Reports as bytes, and
//!   [`decode`]: those bytes decoded into buffers reused from report to report.
//! - [`assigner`]: pinglist computation and push, fingerprints, generations.
//! - `authn`: where the session authenticates its client and binds the Hello ([`crate::auth`]).
//! - [`errors`]: why sessions and messages were refused, counted for `/metrics`.
//! - [`pairs`]: when each directed pair was last probed, for the coverage figures.

pub mod admit;
pub mod assigner;
mod authn;
pub mod claim;
pub mod decode;
pub mod errors;
pub mod hello;
pub mod inbound;
pub mod pairs;
pub mod rejected;
pub mod session;
pub mod text;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;

pub use errors::IngestErrorReason;
pub use hello::{HelloError, MAX_START_AHEAD_MS, validate_hello, validate_hello_at};

use crate::auth::{AgentAuth, AuthCounters, AuthFailure};
use crate::graph::{AgentKey, Graph};
use crate::policy::PinglistSource;
use session::SessionHandle;

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
    /// Most open sessions; a Hello beyond it is refused with RESOURCE_EXHAUSTED.
    pub max_agents: usize,
    /// Every directed pair should be probed within this (`--coverage-period`): what the
    /// per-pair ledger judges pairs against ([`crate::policy::ledger`]).
    pub coverage_period: Duration,
    /// Take a node's zone from its agents' Hellos (off when Kubernetes discovery owns the zones).
    pub hello_zones: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_millis(100),
            probe_timeout: Duration::from_secs(1),
            payload_sizes: vec![56, 1372],
            report_interval: Duration::from_secs(1),
            down_after: 6,
            assign_debounce: Duration::from_millis(200),
            hello_timeout: Duration::from_secs(10),
            session_buffer: 256,
            max_agents: 2000,
            coverage_period: Duration::from_secs(15 * 60),
            hello_zones: true,
        }
    }
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
    /// The latest assignment each agent refused ([`rejected`]).
    rejected: DashMap<AgentKey, rejected::Rejected>,
    /// Reports an agent numbered but that never arrived (sequence gaps: its replay buffer
    /// overflowed, or it died with reports unsent).
    reports_lost: AtomicU64,
    /// Agent authentication (`None`: every session is accepted, the pre-auth behaviour).
    auth: Option<Arc<dyn AgentAuth>>,
    auth_failures: AuthCounters,
    /// Buffers the sessions decode their reports into ([`decode`]).
    reports: decode::ReportPool,
    /// When each directed pair was last probed ([`pairs`]).
    ledger: crate::policy::PairLedger,
}

/// The agent-facing service (cheap to clone).
#[derive(Debug, Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

impl Ingest {
    /// A service over `graph` assigning pinglists from `pinglist`.
    #[must_use]
    pub fn new(graph: Arc<Graph>, cfg: IngestConfig, pinglist: Arc<dyn PinglistSource>) -> Self {
        Self::with_auth(graph, cfg, pinglist, None)
    }

    /// [`Ingest::new`] whose sessions must pass `auth` (see [`crate::auth`]) before their Hello
    /// is believed.
    #[must_use]
    pub fn with_auth(
        graph: Arc<Graph>,
        cfg: IngestConfig,
        pinglist: Arc<dyn PinglistSource>,
        auth: Option<Arc<dyn AgentAuth>>,
    ) -> Self {
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
                rejected: DashMap::new(),
                reports_lost: AtomicU64::new(0),
                auth,
                auth_failures: AuthCounters::default(),
                reports: decode::ReportPool::default(),
                ledger: crate::policy::PairLedger::default(),
            }),
        }
    }

    /// Sessions refused by agent authentication, by reason (for `/metrics`).
    #[must_use]
    pub fn auth_failures(&self) -> [(AuthFailure, u64); AuthFailure::ALL.len()] {
        self.inner.auth_failures.snapshot()
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

    /// What the pinglist policy guarantees (`None`: no policy figures, every pair all the time).
    #[must_use]
    pub fn coverage(&self) -> Option<crate::policy::Coverage> {
        self.inner.pinglist.coverage()
    }
}
