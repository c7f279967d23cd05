//! The lab's topology as data: who gets which namespace, address and MAC, and the exact command
//! lines that build it.
//!
//! Keeping the plan pure means the whole addressing scheme is unit-tested without root, and a
//! failed build can be debugged by printing [`Plan::setup`] and running it by hand.
//!
//! ```text
//!   fabric ns:  br0 ── n1 ── n2 ── ... (one veth port per node)       underlay 198.18.0.0/24
//!                      │
//!   nodeI-host: eth0 198.18.0.I/24, vxlan0 10.244.I.0/32 (VNI 1, UDP 8472, fixed MAC),
//!               pod0 10.244.I.1/24, onlink routes 10.244.J.0/24 via 10.244.J.0 dev vxlan0
//!                      │
//!   nodeI-pod:  eth0 10.244.I.2/24, default via 10.244.I.1
//! ```
//! With `ipv6`, the same shape again in ULA space: underlay `fd00:198:18::I/64`, pods
//! `fd00:10:244:I::2/64` (overlay still carried over the IPv4 underlay, like a dual-stack flannel).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::cmd::Cmd;
use crate::naming::{NodeName, Prefix};

/// Most nodes a lab may have (each node is two namespaces and two agents).
pub const MAX_NODES: u8 = 32;
/// MTU of the overlay (VXLAN adds 50 bytes to the underlay's 1500).
pub const OVERLAY_MTU: u32 = 1450;
/// VXLAN network identifier and UDP port, as flannel uses them.
pub const VNI: u32 = 1;
/// VXLAN UDP port (flannel's).
pub const VXLAN_PORT: u16 = 8472;

/// A plan that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Node count out of range.
    #[error("--nodes must be between 2 and {MAX_NODES}, not {0}")]
    NodeCount(u32),
}

/// Which of a node's two networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The pod namespace (a pod network agent).
    Pod,
    /// The host namespace (a host network agent).
    Host,
}

impl Network {
    /// `pod` or `host`, as the agent's `--network` flag spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Pod => "pod",
            Network::Host => "host",
        }
    }
}

/// One simulated node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    /// Node number (1-based).
    pub index: u8,
    /// `nodeI`.
    pub name: String,
    /// Host network namespace.
    pub host_ns: String,
    /// Pod network namespace.
    pub pod_ns: String,
    /// The node's port on the fabric bridge (in the fabric namespace).
    pub fabric_port: String,
    /// Underlay address of the host (`eth0` in the host namespace).
    pub host_v4: Ipv4Addr,
    /// The pod's address.
    pub pod_v4: Ipv4Addr,
    /// The host side of the pod's veth (the pod's gateway).
    pub pod_gw_v4: Ipv4Addr,
    /// The VXLAN device's address (`10.244.I.0`), the next hop peers use for this node's pods.
    pub vtep_v4: Ipv4Addr,
    /// The VXLAN device's fixed MAC.
    pub vtep_mac: String,
    /// IPv6 addresses, when the lab is dual-stack.
    pub v6: Option<NodeV6>,
}

/// A node's IPv6 addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeV6 {
    /// Underlay address of the host.
    pub host: Ipv6Addr,
    /// The pod's address.
    pub pod: Ipv6Addr,
    /// The pod's gateway.
    pub pod_gw: Ipv6Addr,
    /// The VXLAN device's address.
    pub vtep: Ipv6Addr,
}

impl NodePlan {
    fn new(prefix: &Prefix, index: u8, ipv6: bool) -> Self {
        let i = index;
        let i16 = u16::from(i);
        NodePlan {
            index: i,
            name: NodeName(i).to_string(),
            host_ns: prefix.host_ns(i),
            pod_ns: prefix.pod_ns(i),
            fabric_port: format!("n{i}"),
            host_v4: Ipv4Addr::new(198, 18, 0, i),
            pod_v4: Ipv4Addr::new(10, 244, i, 2),
            pod_gw_v4: Ipv4Addr::new(10, 244, i, 1),
            vtep_v4: Ipv4Addr::new(10, 244, i, 0),
            vtep_mac: format!("02:e4:0a:f4:{i:02x}:00"),
            v6: ipv6.then(|| NodeV6 {
                host: Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, i16),
                pod: Ipv6Addr::new(0xfd00, 0x10, 0x244, i16, 0, 0, 0, 2),
                pod_gw: Ipv6Addr::new(0xfd00, 0x10, 0x244, i16, 0, 0, 0, 1),
                vtep: Ipv6Addr::new(0xfd00, 0x10, 0x244, i16, 0, 0, 0, 0),
            }),
        }
    }

    /// The namespace of one of this node's networks.
    pub fn ns(&self, network: Network) -> &str {
        match network {
            Network::Pod => &self.pod_ns,
            Network::Host => &self.host_ns,
        }
    }

    /// The addresses an agent on `network` announces (IPv4 first).
    pub fn addresses(&self, network: Network) -> Vec<IpAddr> {
        let mut out = vec![IpAddr::V4(match network {
            Network::Pod => self.pod_v4,
            Network::Host => self.host_v4,
        })];
        if let Some(v6) = &self.v6 {
            out.push(IpAddr::V6(match network {
                Network::Pod => v6.pod,
                Network::Host => v6.host,
            }));
        }
        out
    }
}

/// One addressable endpoint of the lab (what an agent probes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Node number.
    pub node: u8,
    /// Pod or host network.
    pub network: Network,
    /// Address.
    pub addr: IpAddr,
}

/// The whole lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The lab's prefix.
    pub prefix: String,
    /// The fabric namespace.
    pub fabric_ns: String,
    /// Underlay prefix length.
    pub underlay_prefix_len: u8,
    /// The nodes, in order.
    pub nodes: Vec<NodePlan>,
}

impl Plan {
    /// Plans a lab of `nodes` nodes.
    pub fn new(prefix: &Prefix, nodes: u32, ipv6: bool) -> Result<Self, PlanError> {
        let n = u8::try_from(nodes)
            .ok()
            .filter(|n| (2..=MAX_NODES).contains(n))
            .ok_or(PlanError::NodeCount(nodes))?;
        Ok(Plan {
            prefix: prefix.to_string(),
            fabric_ns: prefix.fabric_ns(),
            underlay_prefix_len: 24,
            nodes: (1..=n).map(|i| NodePlan::new(prefix, i, ipv6)).collect(),
        })
    }

    /// True if the lab is dual-stack.
    pub fn ipv6(&self) -> bool {
        self.nodes.first().is_some_and(|n| n.v6.is_some())
    }

    /// The node with number `index`.
    pub fn node(&self, index: u8) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.index == index)
    }

    /// Every namespace of the lab, in creation order.
    pub fn namespaces(&self) -> Vec<String> {
        let mut out = vec![self.fabric_ns.clone()];
        for n in &self.nodes {
            out.push(n.host_ns.clone());
            out.push(n.pod_ns.clone());
        }
        out
    }

    /// Every endpoint (node, network, address).
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for n in &self.nodes {
            for network in [Network::Pod, Network::Host] {
                for addr in n.addresses(network) {
                    out.push(Endpoint {
                        node: n.index,
                        network,
                        addr,
                    });
                }
            }
        }
        out
    }

    /// The command lines that build the lab, in order. Namespaces are created by the caller
    /// (so it can record each one for cleanup); these steps assume they exist.
    pub fn setup(&self) -> Vec<Cmd> {
        let fab = Some(self.fabric_ns.as_str());
        let mut c = vec![
            Cmd::ip(fab, ["link", "set", "lo", "up"]),
            Cmd::ip(fab, ["link", "add", "br0", "type", "bridge"]),
            Cmd::ip(fab, ["link", "set", "br0", "up"]),
        ];
        for n in &self.nodes {
            c.extend(self.node_setup(n));
        }
        for n in &self.nodes {
            for peer in self.nodes.iter().filter(|p| p.index != n.index) {
                c.extend(overlay_peer(n, peer));
            }
        }
        c
    }

    fn node_setup(&self, n: &NodePlan) -> Vec<Cmd> {
        let h = Some(n.host_ns.as_str());
        let p = Some(n.pod_ns.as_str());
        let mtu = OVERLAY_MTU.to_string();
        let mut sysctls = vec![
            ("net.ipv4.ip_forward", "1"),
            // Pod-to-remote-host replies come back through the overlay, requests leave
            // through eth0: asymmetric on purpose (no masquerade), so no reverse-path filter.
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ];
        // No duplicate address detection: a tentative link-local address blocks neighbour
        // discovery for a second or two, and the lab must answer the moment it is built.
        let no_dad = [
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
        ];
        if n.v6.is_some() {
            sysctls.push(("net.ipv6.conf.all.forwarding", "1"));
            sysctls.extend(no_dad);
        }
        let mut c = vec![
            Cmd::ip(h, ["link", "set", "lo", "up"]),
            Cmd::ip(p, ["link", "set", "lo", "up"]),
            Cmd::sysctl(&n.host_ns, &sysctls),
        ];
        if n.v6.is_some() {
            c.push(Cmd::sysctl(&n.pod_ns, &no_dad));
        }
        c.extend([
            // The underlay: a veth from the fabric bridge to the host's eth0.
            Cmd::ip(
                Some(&self.fabric_ns),
                [
                    "link",
                    "add",
                    &n.fabric_port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    &n.host_ns,
                ],
            ),
            Cmd::ip(
                Some(&self.fabric_ns),
                ["link", "set", &n.fabric_port, "master", "br0", "up"],
            ),
            Cmd::ip(
                h,
                [
                    "addr".to_string(),
                    "add".into(),
                    format!("{}/{}", n.host_v4, self.underlay_prefix_len),
                    "dev".into(),
                    "eth0".into(),
                ],
            ),
        ]);
        if let Some(v6) = &n.v6 {
            c.push(Cmd::ip(
                h,
                [
                    "addr".to_string(),
                    "add".into(),
                    format!("{}/64", v6.host),
                    "dev".into(),
                    "eth0".into(),
                    "nodad".into(),
                ],
            ));
        }
        c.push(Cmd::ip(h, ["link", "set", "eth0", "up"]));
        // The pod: a veth from the host namespace into the pod namespace.
        c.extend([
            Cmd::ip(
                h,
                [
                    "link", "add", "pod0", "mtu", &mtu, "type", "veth", "peer", "name", "eth0",
                    "mtu", &mtu, "netns", &n.pod_ns,
                ],
            ),
            Cmd::ip(
                h,
                [
                    "addr".to_string(),
                    "add".into(),
                    format!("{}/24", n.pod_gw_v4),
                    "dev".into(),
                    "pod0".into(),
                ],
            ),
            Cmd::ip(
                p,
                [
                    "addr".to_string(),
                    "add".into(),
                    format!("{}/24", n.pod_v4),
                    "dev".into(),
                    "eth0".into(),
                ],
            ),
        ]);
        if let Some(v6) = &n.v6 {
            c.push(Cmd::ip(
                h,
                [
                    "addr".to_string(),
                    "add".into(),
                    format!("{}/64", v6.pod_gw),
                    "dev".into(),
                    "pod0".into(),
                    "nodad".into(),
                ],
            ));
            c.push(Cmd::ip(
                p,
                [
                    "addr".to_string(),
                    "add".into(),
                    format!("{}/64", v6.pod),
                    "dev".into(),
                    "eth0".into(),
                    "nodad".into(),
                ],
            ));
        }
        c.extend([
            Cmd::ip(h, ["link", "set", "pod0", "up"]),
            Cmd::ip(p, ["link", "set", "eth0", "up"]),
            Cmd::ip(
                p,
                [
                    "route".to_string(),
                    "add".into(),
                    "default".into(),
                    "via".into(),
                    n.pod_gw_v4.to_string(),
                ],
            ),
        ]);
        if let Some(v6) = &n.v6 {
            c.push(Cmd::ip(
                p,
                [
                    "-6".to_string(),
                    "route".into(),
                    "add".into(),
                    "default".into(),
                    "via".into(),
                    v6.pod_gw.to_string(),
                ],
            ));
        }
        // The overlay endpoint, flannel style: fixed MAC, no learning, peers programmed statically.
        c.extend([
            Cmd::ip(
                h,
                [
                    "link".to_string(),
                    "add".into(),
                    "vxlan0".into(),
                    "address".into(),
                    n.vtep_mac.clone(),
                    "mtu".into(),
                    mtu.clone(),
                    "type".into(),
                    "vxlan".into(),
                    "id".into(),
                    VNI.to_string(),
                    "local".into(),
                    n.host_v4.to_string(),
                    "dev".into(),
                    "eth0".into(),
                    "dstport".into(),
                    VXLAN_PORT.to_string(),
                    "nolearning".into(),
                ],
            ),
            Cmd::ip(
                h,
                [
                    "addr".to_string(),
                    "add".into(),
                    format!("{}/32", n.vtep_v4),
                    "dev".into(),
                    "vxlan0".into(),
                ],
            ),
        ]);
        if let Some(v6) = &n.v6 {
            c.push(Cmd::ip(
                h,
                [
                    "addr".to_string(),
                    "add".into(),
                    format!("{}/128", v6.vtep),
                    "dev".into(),
                    "vxlan0".into(),
                    "nodad".into(),
                ],
            ));
        }
        c.push(Cmd::ip(h, ["link", "set", "vxlan0", "up"]));
        c
    }
}

/// Routes, neighbour and forwarding entries on `n` for reaching `peer`'s pods over VXLAN.
fn overlay_peer(n: &NodePlan, peer: &NodePlan) -> Vec<Cmd> {
    let h = Some(n.host_ns.as_str());
    let mut c = vec![
        Cmd::ip(
            h,
            [
                "route".to_string(),
                "add".into(),
                format!("10.244.{}.0/24", peer.index),
                "via".into(),
                peer.vtep_v4.to_string(),
                "dev".into(),
                "vxlan0".into(),
                "onlink".into(),
            ],
        ),
        Cmd::ip(
            h,
            [
                "neigh".to_string(),
                "add".into(),
                peer.vtep_v4.to_string(),
                "lladdr".into(),
                peer.vtep_mac.clone(),
                "dev".into(),
                "vxlan0".into(),
                "nud".into(),
                "permanent".into(),
            ],
        ),
    ];
    if let Some(v6) = &peer.v6 {
        c.push(Cmd::ip(
            h,
            [
                "-6".to_string(),
                "route".into(),
                "add".into(),
                format!("{}/64", v6.vtep),
                "via".into(),
                v6.vtep.to_string(),
                "dev".into(),
                "vxlan0".into(),
                "onlink".into(),
            ],
        ));
        c.push(Cmd::ip(
            h,
            [
                "-6".to_string(),
                "neigh".into(),
                "add".into(),
                v6.vtep.to_string(),
                "lladdr".into(),
                peer.vtep_mac.clone(),
                "dev".into(),
                "vxlan0".into(),
                "nud".into(),
                "permanent".into(),
            ],
        ));
    }
    c.push(Cmd::in_ns(
        &n.host_ns,
        "bridge",
        [
            "fdb".to_string(),
            "append".into(),
            peer.vtep_mac.clone(),
            "dev".into(),
            "vxlan0".into(),
            "dst".into(),
            peer.host_v4.to_string(),
        ],
    ));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> Prefix {
        "eml1".parse().expect("prefix")
    }

    #[test]
    fn node_count_bounds() {
        for bad in [0, 1, 33, 1000] {
            let err = Plan::new(&prefix(), bad, false).expect_err("bad count");
            assert_eq!(
                err.to_string(),
                format!("--nodes must be between 2 and 32, not {bad}")
            );
        }
        assert_eq!(
            Plan::new(&prefix(), 32, false).map(|p| p.nodes.len()),
            Ok(32)
        );
    }

    #[test]
    fn addressing_scheme() {
        let plan = Plan::new(&prefix(), 4, true).expect("plan");
        let n3 = plan.node(3).expect("node3");
        assert_eq!(n3.name, "node3");
        assert_eq!(n3.host_ns, "eml1-node3-host");
        assert_eq!(n3.pod_ns, "eml1-node3-pod");
        assert_eq!(n3.host_v4, Ipv4Addr::new(198, 18, 0, 3));
        assert_eq!(n3.pod_v4, Ipv4Addr::new(10, 244, 3, 2));
        assert_eq!(n3.pod_gw_v4, Ipv4Addr::new(10, 244, 3, 1));
        assert_eq!(n3.vtep_v4, Ipv4Addr::new(10, 244, 3, 0));
        assert_eq!(n3.vtep_mac, "02:e4:0a:f4:03:00");
        let v6 = n3.v6.as_ref().expect("v6");
        assert_eq!(v6.host.to_string(), "fd00:198:18::3");
        assert_eq!(v6.pod.to_string(), "fd00:10:244:3::2");
        assert_eq!(
            n3.addresses(Network::Pod),
            vec![
                "10.244.3.2".parse::<IpAddr>().expect("ip"),
                "fd00:10:244:3::2".parse().expect("ip")
            ]
        );
        assert_eq!(plan.endpoints().len(), 4 * 2 * 2);
        assert_eq!(plan.namespaces().len(), 9);
        assert!(plan.ipv6());
    }

    #[test]
    fn every_address_is_inside_the_lab_ranges() {
        let plan = Plan::new(&prefix(), 32, false).expect("plan");
        for e in plan.endpoints() {
            let IpAddr::V4(v4) = e.addr else {
                panic!("v4 only")
            };
            let o = v4.octets();
            assert!(
                (o[0] == 198 && (o[1] & 0xfe) == 18) || (o[0] == 10 && o[1] == 244),
                "{v4}"
            );
        }
    }

    #[test]
    fn setup_builds_a_flannel_style_overlay() {
        let plan = Plan::new(&prefix(), 2, false).expect("plan");
        let lines: Vec<String> = plan.setup().iter().map(ToString::to_string).collect();
        let has = |l: &str| {
            assert!(
                lines.iter().any(|x| x == l),
                "missing `{l}` in:\n{}",
                lines.join("\n")
            )
        };
        has("ip -n eml1-fabric link add br0 type bridge");
        has("ip -n eml1-fabric link add n2 type veth peer name eth0 netns eml1-node2-host");
        has("ip -n eml1-node1-host addr add 198.18.0.1/24 dev eth0");
        has(
            "ip -n eml1-node1-host link add vxlan0 address 02:e4:0a:f4:01:00 mtu 1450 type vxlan id 1 local 198.18.0.1 dev eth0 dstport 8472 nolearning",
        );
        has("ip -n eml1-node1-host route add 10.244.2.0/24 via 10.244.2.0 dev vxlan0 onlink");
        has(
            "ip -n eml1-node1-host neigh add 10.244.2.0 lladdr 02:e4:0a:f4:02:00 dev vxlan0 nud permanent",
        );
        has(
            "ip netns exec eml1-node2-host bridge fdb append 02:e4:0a:f4:01:00 dev vxlan0 dst 198.18.0.1",
        );
        has("ip -n eml1-node2-pod route add default via 10.244.2.1");
        // Nothing ever runs outside the lab's namespaces.
        for l in &lines {
            assert!(
                l.starts_with("ip -n eml1-") || l.starts_with("ip netns exec eml1-"),
                "{l}"
            );
        }
        // The sysctls come before the interfaces they must apply to.
        let sysctl = lines
            .iter()
            .position(|l| l.contains("eml1-node1-host sysctl"))
            .expect("sysctl");
        let veth = lines
            .iter()
            .position(|l| l.contains("link add n1 type veth"))
            .expect("veth");
        assert!(sysctl < veth);
    }
}
