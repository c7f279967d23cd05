//! Who probes whom.
//!
//! Behind a trait so the source of truth can change without touching ingest: without Kubernetes
//! (the default) the pinglist is the full mesh of connected agents ([`full_mesh`]); Kubernetes
//! discovery supplies a second implementation from nodes, readiness and draining. Either is the
//! full list the probe budget ([`budget`], `--pinglist budget`) selects from. What was actually
//! probed, pair by pair, is kept by [`ledger`].

pub mod budget;
pub mod full_mesh;
pub mod ledger;

pub use budget::{Budget, BudgetConfig, Coverage};
pub use full_mesh::FullMesh;
pub use ledger::{InboundPair, PairLedger, PairSummary};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::v1::Network;

use crate::graph::AgentKey;

/// A connected agent and the addresses it announced.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Node and network.
    pub key: AgentKey,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
}

/// One target in a pinglist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTarget {
    /// Stable id ([`crate::graph::endpoint_id`]).
    pub id: u64,
    /// Node of the target.
    pub node: Arc<str>,
    /// Network of the target.
    pub network: Network,
    /// Address to probe.
    pub addr: IpAddr,
    /// The target's node is expected to fail: a planned outage (cordoned, draining, deleting).
    pub expected_down: bool,
}

impl PlannedTarget {
    /// The order of every pinglist and of [`Shared::targets`]: (node, network, address). A
    /// target's position in this order is its slot.
    #[must_use]
    pub fn slot_order(a: &Self, b: &Self) -> std::cmp::Ordering {
        (&a.node, a.network, a.addr).cmp(&(&b.node, b.network, b.addr))
    }
}

/// Every agent's full list of one round at once ([`PinglistSource::shared`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// Every target, sorted by (node, network, address).
    pub targets: Vec<PlannedTarget>,
    /// An agent's list leaves out every target on its node (else only its own node and network).
    pub whole_node: bool,
}

impl Shared {
    /// Whether `agent`'s list leaves `t` out as its own.
    #[must_use]
    pub fn own(&self, agent: &AgentKey, t: &PlannedTarget) -> bool {
        t.node == agent.node && (self.whole_node || t.network == agent.network)
    }
}

/// Computes an agent's targets from the cluster's agents.
pub trait PinglistSource: Send + Sync + std::fmt::Debug + 'static {
    /// The targets of `agent`, in a stable order (the order is the slot order).
    fn targets(&self, agent: &AgentKey, peers: &[Peer]) -> Vec<PlannedTarget>;

    /// Every agent's list of this round at once, when each one is this list less its own
    /// ([`Shared::own`]) and less the address families [`PinglistSource::families`] rules out, in
    /// this order. A policy that keeps a small part of each list then skips building every full
    /// list (10⁸ targets per round at 5,000 nodes). `None`: ask [`PinglistSource::targets`].
    fn shared(&self, peers: &[Peer]) -> Option<Shared> {
        let _ = peers;
        None
    }

    /// Which address families (IPv4, IPv6) `agent`'s list keeps, with [`PinglistSource::shared`].
    fn families(&self, agent: &AgentKey, peers: &[Peer]) -> (bool, bool) {
        let _ = (agent, peers);
        (true, true)
    }

    /// Called once per assignment round with the round's peers, before `targets` for each agent
    /// with the same slice: a policy may do its per-membership work here once.
    fn prepare(&self, peers: &[Peer]) {
        let _ = peers;
    }

    /// When the lists change by themselves (a rotation), the time until the next change: the
    /// assigner recomputes them then, even without a membership change.
    fn refresh_in(&self) -> Option<Duration> {
        None
    }

    /// Whether `agent`'s list may have changed by itself (a rotation) between the wall-clock
    /// times `since` and `now` ([`wall_clock`]): a round woken only by [`refresh_in`] computes
    /// just these lists.
    ///
    /// [`refresh_in`]: PinglistSource::refresh_in
    fn rotated(&self, agent: &AgentKey, since: Duration, now: Duration) -> bool {
        let _ = (agent, since, now);
        true
    }

    /// What the lists guarantee, for `/metrics` (`None`: every pair all the time).
    fn coverage(&self) -> Option<Coverage> {
        None
    }
}

/// Wall-clock time since the Unix epoch: what rotating lists count their epochs in, so that a
/// restarted aggregator goes on with the rotation where it was.
#[must_use]
pub fn wall_clock() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// `--pinglist`: which policy turns the full list into an agent's pinglist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyName {
    /// Every agent probes every other agent.
    FullMesh,
    /// Full mesh while it fits in `--probe-budget-pps`; beyond, fast probers plus a rotation.
    #[default]
    Budget,
}

/// The pinglist source `name` says over `inner` (the full mesh or the Kubernetes model).
#[must_use]
pub fn select(
    name: PolicyName,
    cfg: &BudgetConfig,
    inner: Arc<dyn PinglistSource>,
    zones: budget::ZoneSource,
) -> Arc<dyn PinglistSource> {
    match name {
        PolicyName::FullMesh => inner,
        PolicyName::Budget => Arc::new(Budget::new(cfg.clone(), inner, zones)),
    }
}
