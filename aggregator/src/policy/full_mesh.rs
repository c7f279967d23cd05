//! The default pinglist: every agent probes every other agent, one target per address family.
//!
//! Why full mesh by default: without an outside view of the cluster (Kubernetes), the connected
//! agents are the only truth, and every pair of them is a path that can break.

use super::{Peer, PinglistSource, PlannedTarget, Shared};
use crate::graph::{AgentKey, endpoint_id, first_per_family};

/// Every agent probes every other agent, both networks: the first address of each family the
/// peer announced ([`first_per_family`]), since node, network and family are one target.
#[derive(Debug, Clone, Copy, Default)]
pub struct FullMesh;

impl PinglistSource for FullMesh {
    fn targets(&self, agent: &AgentKey, peers: &[Peer]) -> Vec<PlannedTarget> {
        all(peers.iter().filter(|p| &p.key != agent))
    }

    fn shared(&self, peers: &[Peer]) -> Option<Shared> {
        Some(Shared {
            targets: all(peers.iter()),
            whole_node: false,
        })
    }
}

/// The targets of `peers`, sorted by (node, network, address).
fn all<'a>(peers: impl Iterator<Item = &'a Peer>) -> Vec<PlannedTarget> {
    let mut out = Vec::new();
    for p in peers {
        for addr in first_per_family(&p.addresses) {
            out.push(PlannedTarget {
                id: endpoint_id(&p.key.node, p.key.network, addr),
                node: p.key.node.clone(),
                network: p.key.network,
                addr,
                expected_down: false,
            });
        }
    }
    out.sort_by(PlannedTarget::slot_order);
    out
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use echomesh_proto::v1::Network;

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
