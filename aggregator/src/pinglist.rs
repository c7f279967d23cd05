//! Who probes whom.
//!
//! Behind a trait so the source of truth can change without touching ingest: without Kubernetes
//! (the default) the pinglist is the full mesh of connected agents; the Kubernetes discovery adds a
//! second implementation (nodes, readiness, draining) later.

use std::net::IpAddr;
use std::sync::Arc;

use echomesh_proto::v1::Network;

use crate::graph::{AgentKey, endpoint_id};

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
    /// Stable id ([`endpoint_id`]).
    pub id: u64,
    /// Node of the target.
    pub node: Arc<str>,
    /// Network of the target.
    pub network: Network,
    /// Address to probe.
    pub addr: IpAddr,
    /// The target's node is expected to fail (NotReady, draining).
    pub expected_down: bool,
}

/// Computes an agent's targets from the cluster's agents.
pub trait PinglistSource: Send + Sync + std::fmt::Debug + 'static {
    /// The targets of `agent`, in a stable order (the order is the slot order).
    fn targets(&self, agent: &AgentKey, peers: &[Peer]) -> Vec<PlannedTarget>;
}

/// Every agent probes every address of every other agent, both networks.
#[derive(Debug, Clone, Copy, Default)]
pub struct FullMesh;

impl PinglistSource for FullMesh {
    fn targets(&self, agent: &AgentKey, peers: &[Peer]) -> Vec<PlannedTarget> {
        let mut out = Vec::new();
        for p in peers.iter().filter(|p| &p.key != agent) {
            for &addr in &p.addresses {
                out.push(PlannedTarget {
                    id: endpoint_id(&p.key.node, p.key.network, addr),
                    node: p.key.node.clone(),
                    network: p.key.network,
                    addr,
                    expected_down: false,
                });
            }
        }
        out.sort_by(|a, b| (&a.node, a.network, a.addr).cmp(&(&b.node, b.network, b.addr)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(node: &str, net: Network, addrs: &[&str]) -> Peer {
        Peer {
            key: AgentKey {
                node: node.into(),
                network: net,
            },
            addresses: addrs.iter().map(|a| a.parse().expect("ip")).collect(),
        }
    }

    #[test]
    fn full_mesh_targets_everyone_else_on_both_networks() {
        let peers = vec![
            peer("a", Network::Pod, &["10.0.0.1"]),
            peer("a", Network::Host, &["192.168.0.1"]),
            peer("b", Network::Pod, &["10.0.1.1", "fd00::1"]),
        ];
        let t = FullMesh.targets(&peers[0].key, &peers);
        let addrs: Vec<String> = t.iter().map(|t| t.addr.to_string()).collect();
        assert_eq!(addrs, ["192.168.0.1", "10.0.1.1", "fd00::1"]);
        assert!(t.iter().all(|t| t.id != 0));
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(
            endpoint_id("n", Network::Pod, a),
            endpoint_id("n", Network::Pod, a)
        );
        assert_ne!(
            endpoint_id("n", Network::Pod, a),
            endpoint_id("n", Network::Host, a)
        );
    }
}
