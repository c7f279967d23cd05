//! Who is who in the graph: agents, endpoints and their stable ids.
//!
//! Target ids are a keyed hash of `(node, network, address)` rather than a counter, so every
//! aggregator computes the same id for the same endpoint and ids survive reassignments and
//! restarts; a report measured under an old assignment can still be matched by id.

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

/// The stable target id of an endpoint: the same on every aggregator, across restarts.
#[must_use]
pub fn endpoint_id(node: &str, network: Network, addr: IpAddr) -> u64 {
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6563_686f, 0x6d65_7368);
    h.write(node.as_bytes());
    h.write_u8(0xff);
    h.write_i32(network as i32);
    match addr {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
    // 0 is reserved for "no target" in an empty record.
    h.finish().max(1)
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
