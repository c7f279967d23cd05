//! Who is who in the graph: agents, endpoints and their stable ids.
//!
//! Target ids are a keyed hash of `(node, network, address family)` rather than a counter, so every
//! aggregator computes the same id for the same endpoint and ids survive reassignments and
//! restarts; a report measured under an old assignment, or replayed to another aggregator, can
//! still be matched by id.
//!
//! Why the address is not part of the id: a pod-network agent gets a new pod IP on every rollout,
//! and an id that followed the address would start every edge towards that node from nothing (loss
//! ring, RTT sketch, state). The address is an attribute of the endpoint, replaced when the agent
//! announces a new one. The family is part of the id, so a dual-stack node keeps one IPv4 and one
//! IPv6 edge. One family therefore has one target per node and network: [`first_per_family`]
//! picks it, the first address of that family in the agent's (or the Node's) order.

use std::collections::HashMap;
use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::Arc;

use echomesh_proto::v1::Network;

/// Identifies an agent: a node and the network its agent probes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentKey {
    /// Node name.
    pub node: Arc<str>,
    /// Pod or host network.
    pub network: Network,
}

impl std::fmt::Display for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.node, self.network.name())
    }
}

/// A probe target: one address of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Node the address belongs to.
    pub node: Arc<str>,
    /// Network of the address.
    pub network: Network,
    /// The address.
    pub addr: IpAddr,
}

/// The stable target id of an endpoint: the same on every aggregator, across restarts and across
/// address changes. Only the *family* of `addr` enters the id; the address itself does not.
#[must_use]
pub fn endpoint_id(node: &str, network: Network, addr: IpAddr) -> u64 {
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6563_686f, 0x6d65_7368);
    h.write(node.as_bytes());
    h.write_u8(0xff);
    h.write_i32(network as i32);
    h.write_u8(if addr.is_ipv4() { 4 } else { 6 });
    // 0 is reserved for "no target" in an empty record.
    h.finish().max(1)
}

/// The addresses that become targets: the first of each family, in the order given (at most one
/// IPv4 and one IPv6), since a node, network and family is one target ([`endpoint_id`]).
#[must_use]
pub fn first_per_family(addrs: &[IpAddr]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::with_capacity(2);
    for &a in addrs {
        if !out.iter().any(|o| o.is_ipv4() == a.is_ipv4()) {
            out.push(a);
        }
    }
    out
}

/// A hasher for target ids: they are already uniform 64-bit hashes, so hashing them again (SipHash)
/// would only cost time on the hot paths.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A map keyed by target id.
pub type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests;
