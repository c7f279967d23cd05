//! Large graphs filled straight from reports, without sessions.
//!
//! The roll-ups, `/metrics` and the page at thousands of nodes only read the graph; filling it in
//! process takes a second where thousands of gRPC sessions would take the machine. One filler
//! keeps those reports' shape (a slot per target, generation 1, one-second windows) and the
//! nodes' names and addresses in one place, so the tests differ only in who probes whom and what
//! is lost.
//!
//! Why a trait and a macro: the aggregator's own unit tests link a second copy of the aggregator
//! crate through this crate, so their `Graph` is another type than this crate's.
//! [`graph_filler!`](crate::graph_filler) writes the few lines that connect a `Graph` to
//! [`FillGraph`], once for this crate's copy ([`GraphFill`]) and once in each unit test module
//! that fills a graph.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use echomesh_proto::{Histogram, v1};

/// What [`Mesh::fill`] needs of a graph.
pub trait FillGraph {
    /// The graph's handle on one agent.
    type Agent;
    /// Registers a connected pod-network agent on `node` at `addr`.
    fn add_pod_agent(&self, node: &str, addr: IpAddr) -> Self::Agent;
    /// Assigns `targets` (generation 1) to `agent`, reporting every `every`.
    fn assign(&self, agent: &Self::Agent, targets: &[u64], every: Duration);
    /// Merges `report`, which must be valid.
    fn merge(&self, agent: &Self::Agent, report: &v1::Report);
}

/// Defines `GraphFill<'a>(&'a Graph)`, the [`FillGraph`] of the `Graph` in module `$graph` (the
/// aggregator's `graph` module: `crate::graph` in its unit tests), private or with the
/// public after `; pub`.
#[macro_export]
macro_rules! graph_filler {
    ($($graph:ident)::+) => {
        $crate::graph_filler!(@with [] $($graph)::+);
    };
    ($($graph:ident)::+; pub) => {
        $crate::graph_filler!(@with [pub] $($graph)::+);
    };
    (@with [$($vis:tt)*] $($graph:ident)::+) => {
        /// The graph as `FillGraph` sees it.
        #[derive(Debug, Clone, Copy)]
        $($vis)* struct GraphFill<'a>($($vis)* &'a $($graph)::+::Graph);

        impl $crate::aggregator::mesh::FillGraph for GraphFill<'_> {
            type Agent = ::std::sync::Arc<$($graph)::+::AgentEntry>;

            fn add_pod_agent(&self, node: &str, addr: ::std::net::IpAddr) -> Self::Agent {
                let key = $($graph)::+::AgentKey {
                    node: node.into(),
                    network: ::echomesh_proto::v1::Network::Pod,
                };
                let info = $($graph)::+::AgentInfo {
                    addresses: vec![addr],
                    connected: true,
                    ..::core::default::Default::default()
                };
                self.0.upsert_agent(key, info)
            }

            fn assign(&self, agent: &Self::Agent, targets: &[u64], every: ::std::time::Duration) {
                self.0.apply_assignment(agent, 1, targets, every);
            }

            fn merge(&self, agent: &Self::Agent, report: &::echomesh_proto::v1::Report) {
                self.0.merge_report(agent, report).expect("a valid report");
            }
        }
    };
}

graph_filler!(echomesh_aggregator::graph; pub);

/// Node `i`'s name: `node-0042`.
#[must_use]
pub fn node_name(i: usize) -> String {
    format!("node-{i:04}")
}

/// Node `i`'s address: `10.0.0.42` (unique up to 16 million nodes).
#[must_use]
pub fn node_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8))
}

/// `nodes` pod-network agents ([`node_name`] at [`node_addr`]), each probing `peers(i)` and
/// reporting `reports` times that it sent `sent` probes to each, of which `lost(i, j)` from node
/// `i` to node `j` were lost; the replies took `rtt_us` (an edge that lost everything has no
/// replies).
#[derive(Clone, Copy)]
pub struct Mesh<'a> {
    /// How many nodes.
    pub nodes: usize,
    /// The nodes node `i` probes.
    pub peers: &'a dyn Fn(usize) -> Vec<usize>,
    /// The probes lost from node `i` to node `j`, of `sent`.
    pub lost: &'a dyn Fn(usize, usize) -> u64,
    /// The probes sent per target and report.
    pub sent: u64,
    /// The round-trip times of the replies, in microseconds.
    pub rtt_us: &'a [u64],
    /// How many reports each agent sends.
    pub reports: u64,
    /// The report interval the agents are assigned (past it, edges go stale).
    pub report_interval: Duration,
}

impl std::fmt::Debug for Mesh<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("nodes", &self.nodes)
            .field("sent", &self.sent)
            .field("rtt_us", &self.rtt_us)
            .field("reports", &self.reports)
            .field("report_interval", &self.report_interval)
            .finish_non_exhaustive()
    }
}

impl Mesh<'_> {
    /// Fills `graph`: every agent first, so every target is known, then each agent's assignment
    /// and reports. Returns how many edges it measured.
    pub fn fill<G: FillGraph>(&self, graph: &G) -> usize {
        let agents: Vec<G::Agent> = (0..self.nodes)
            .map(|i| graph.add_pod_agent(&node_name(i), node_addr(i)))
            .collect();
        let mut h = Histogram::new();
        for &us in self.rtt_us {
            h.record(Duration::from_micros(us));
        }
        let (rtt, none) = (
            v1::Histogram::from(&h),
            v1::Histogram::from(&Histogram::new()),
        );
        let mut edges = 0;
        for (i, a) in agents.iter().enumerate() {
            let to = (self.peers)(i);
            let ids: Vec<u64> = to
                .iter()
                .map(|&j| {
                    echomesh_aggregator::graph::endpoint_id(
                        &node_name(j),
                        v1::Network::Pod,
                        node_addr(j),
                    )
                })
                .collect();
            graph.assign(a, &ids, self.report_interval);
            edges += ids.len();
            for seq in 1..=self.reports {
                let targets = to
                    .iter()
                    .enumerate()
                    .map(|(slot, &j)| {
                        let lost = (self.lost)(i, j);
                        v1::TargetStats {
                            target_id: ids[slot],
                            slot: slot as u32,
                            sent: self.sent,
                            received: self.sent - lost,
                            lost,
                            rtt: Some(if lost == self.sent {
                                none.clone()
                            } else {
                                rtt.clone()
                            }),
                            ..v1::TargetStats::default()
                        }
                    })
                    .collect();
                let r = v1::Report {
                    seq,
                    generation: 1,
                    window_start_unix_ms: 0,
                    window_ms: 1000,
                    targets,
                };
                graph.merge(a, &r);
            }
        }
        edges
    }
}
