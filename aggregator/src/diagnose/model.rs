//! What the diagnosis reads (a [`Snapshot`] of edges and agents) and what it says (a
//! [`Diagnosis`]: culprits with evidence).
//!
//! Why a copy of the graph instead of reading it in place: the rule looks at every edge several
//! times (per node, per zone, per link); a flat list of small records taken once keeps the graph's
//! locks short and lets tests build snapshots directly.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use echomesh_proto::v1::{EdgeState, Network};

/// One directed edge as the diagnosis sees it.
#[derive(Debug, Clone)]
pub struct EdgeObs {
    /// The probing node.
    pub source: Arc<str>,
    /// The probed node.
    pub target: Arc<str>,
    /// The network (plane) the probe ran in: the source agent's network.
    pub plane: Network,
    /// The edge's state.
    pub state: EdgeState,
    /// Loss over the last minute, percent.
    pub loss_pct: f64,
    /// The target node is cordoned, draining or being deleted: a planned outage, never a culprit.
    pub expected_down: bool,
    /// When the current state began (Unix milliseconds).
    pub since_unix_ms: u64,
}

/// One agent as the diagnosis sees it.
#[derive(Debug, Clone)]
pub struct AgentObs {
    /// Its node.
    pub node: Arc<str>,
    /// Its network.
    pub plane: Network,
    /// No report for longer than the stale limit (or disconnected): its own edges are UNKNOWN.
    pub stale: bool,
    /// Its node is expected down (cordoned, draining, being deleted).
    pub expected_down: bool,
    /// Its last report (Unix milliseconds).
    pub last_report_unix_ms: u64,
}

/// Everything the rule reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every edge of the networks looked at.
    pub edges: Vec<EdgeObs>,
    /// Every agent of the networks looked at.
    pub agents: Vec<AgentObs>,
    /// Node to zone (`topology.kubernetes.io/zone`), where known.
    pub zones: HashMap<Arc<str>, Arc<str>>,
}

/// What a culprit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A node: its edges fail in every network it has.
    Node,
    /// One node's pod network (its host network is fine): typically the CNI on that node.
    PodNetwork,
    /// One node's host network (its pod network is fine).
    HostNetwork,
    /// A zone cut from the other zones: its cross-zone edges fail.
    Zone,
    /// A single directed link (source to target), in one or both networks.
    Link,
    /// An agent sends no reports: its own edges are UNKNOWN, nothing else says why.
    AgentSilent,
    /// Most agents are silent at once: the aggregator's view is stale, not the cluster broken.
    ViewStale,
}

impl Kind {
    /// Every kind, in the order metrics list them.
    pub const ALL: [Kind; 7] = [
        Kind::Node,
        Kind::PodNetwork,
        Kind::HostNetwork,
        Kind::Zone,
        Kind::Link,
        Kind::AgentSilent,
        Kind::ViewStale,
    ];

    /// The name tables, JSON and metric labels use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::PodNetwork => "pod-network",
            Kind::HostNetwork => "host-network",
            Kind::Zone => "zone",
            Kind::Link => "link",
            Kind::AgentSilent => "agent-silent",
            Kind::ViewStale => "view-stale",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of a culprit's edges fail: towards it, from it, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Edges probing it (towards the node or zone).
    In,
    /// Edges it probes (from the node or zone); a link is always `Out` of its source.
    Out,
    /// Both.
    Both,
}

impl Direction {
    /// `in`, `out` or `both`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Both => "both",
        }
    }

    pub(crate) fn union(a: Option<Self>, b: Self) -> Self {
        match a {
            None => b,
            Some(a) if a == b => a,
            Some(_) => Direction::Both,
        }
    }
}

/// One culprit and its evidence.
#[derive(Debug, Clone)]
pub struct Culprit {
    /// What it is.
    pub kind: Kind,
    /// The node (node, pod/host network, silent agent), the zone, or a link's source; empty for
    /// [`Kind::ViewStale`].
    pub subject: Arc<str>,
    /// A link's target node.
    pub target: Option<Arc<str>>,
    /// The network of its failing edges; `Unspecified` when both.
    pub plane: Network,
    /// Which of its edges fail.
    pub direction: Direction,
    /// Its failing edges (in `direction` and `plane`); for silent agents, the silent agents.
    pub failing: u32,
    /// Its measured edges in `direction` and `plane`; for silent agents, the agents looked at.
    pub total: u32,
    /// Failing edges this culprit explains that no culprit listed before it explains.
    pub explained: u32,
    /// 0..1: how sure the rule is (see `infer`).
    pub confidence: f64,
    /// The earliest state change among the edges it explains, or the silent agent's last report
    /// (Unix milliseconds).
    pub since_unix_ms: u64,
    /// The subject's own agent (or one in the zone) sends no reports.
    pub agent_silent: bool,
}

impl Culprit {
    /// One line for people, e.g. `node node3: 38/38 edges in failing (any network), agent
    /// silent, for 2m10s`.
    #[must_use]
    pub fn describe(&self, now_unix_ms: u64) -> String {
        let mut s = String::new();
        let plane = match self.plane {
            Network::Unspecified => "any network".to_owned(),
            p => format!("{p} network"),
        };
        let _ = match self.kind {
            Kind::Link => write!(
                s,
                "link {} -> {}: {}/{} edges failing ({plane})",
                self.subject,
                self.target.as_deref().unwrap_or(""),
                self.failing,
                self.total
            ),
            Kind::AgentSilent => write!(
                s,
                "agent-silent {}: no reports from {}/{} of its agents ({plane})",
                self.subject, self.failing, self.total
            ),
            Kind::ViewStale => write!(
                s,
                "view-stale: {}/{} agents silent, the aggregator's view is stale",
                self.failing, self.total
            ),
            k => write!(
                s,
                "{k} {}: {}/{} edges {} failing ({plane})",
                self.subject,
                self.failing,
                self.total,
                self.direction.name()
            ),
        };
        if self.agent_silent && !matches!(self.kind, Kind::AgentSilent | Kind::ViewStale) {
            s.push_str(", agent silent");
        }
        if self.since_unix_ms > 0 {
            let _ = write!(
                s,
                ", for {}",
                human_age(now_unix_ms.saturating_sub(self.since_unix_ms))
            );
        }
        s
    }
}

/// `42s`, `3m05s`, `2h10m`.
#[must_use]
pub fn human_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The verdict.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    /// Culprits, most explaining first; links last.
    pub culprits: Vec<Culprit>,
    /// Nodes seen (agents and targets).
    pub nodes: u32,
    /// Edges looked at.
    pub edges: u32,
    /// Edges UP.
    pub edges_up: u32,
    /// Edges DEGRADED or DOWN that are not expected down.
    pub failing: u32,
    /// Failing edges the culprits explain.
    pub explained: u32,
    /// Failing edges towards nodes expected down (not culprits).
    pub expected_down: u32,
    /// Edges UNKNOWN (silent agents, or not measured yet).
    pub unknown: u32,
}

impl Diagnosis {
    /// No culprit.
    #[must_use]
    pub fn healthy(&self) -> bool {
        self.culprits.is_empty()
    }

    /// Failing edges no culprit explains.
    #[must_use]
    pub fn unexplained(&self) -> u32 {
        self.failing.saturating_sub(self.explained)
    }

    /// The verdict in one line: `healthy: 4 nodes, 24 edges UP`, or the culprits.
    #[must_use]
    pub fn summary(&self, now_unix_ms: u64) -> String {
        if self.healthy() {
            let mut s = format!("healthy: {} nodes, {} edges UP", self.nodes, self.edges_up);
            if self.unknown > 0 {
                let _ = write!(s, ", {} UNKNOWN", self.unknown);
            }
            if self.expected_down > 0 {
                let _ = write!(
                    s,
                    ", {} failing towards nodes expected down",
                    self.expected_down
                );
            }
            return s;
        }
        let n = self.culprits.len();
        let mut s = format!("{n} culprit{}: ", if n == 1 { "" } else { "s" });
        const SHOWN: usize = 3;
        let parts: Vec<String> = self
            .culprits
            .iter()
            .take(SHOWN)
            .map(|c| c.describe(now_unix_ms))
            .collect();
        s.push_str(&parts.join("; "));
        if n > SHOWN {
            let _ = write!(s, "; and {} more", n - SHOWN);
        }
        s
    }
}
