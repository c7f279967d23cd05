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
//! IPv6 uses the same shape in ULA space: underlay `fd00:198:18::I/64`, vxlan0
//! `fd00:10:244:I::/128`, pods `fd00:10:244:I::2/64` behind `fd00:10:244:I::1`. Which of the two
//! exist, and which one carries the overlay, is the lab's [`IpFamily`]: a dual-stack lab keeps the overlay on the IPv4
//! underlay (like a dual-stack flannel), an IPv6-only lab has no IPv4 address at all and runs
//! VXLAN over the IPv6 underlay (like flannel's IPv6 backend, with a 1430-byte overlay MTU).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::cmd::Cmd;
use crate::family::IpFamily;
use crate::naming::{NodeName, Prefix};

/// Most nodes a lab may have (each node is two namespaces and two agents).
pub const MAX_NODES: u8 = 32;
/// The IPv6 underlay (the hosts' `fd00:198:18::I/64`).
pub const V6_UNDERLAY: &str = "fd00:198:18::/64";
/// What the lab's agents may probe (`--allow-cidr`): the pod networks (`10.244.0.0/16`,
/// `fd00:10:244::/48`) and the hosts' underlays (`198.18.0.0/24`, [`V6_UNDERLAY`]). The IPv4
/// underlay is the benchmarking range, outside an agent's default private ranges.
pub const AGENT_ALLOW_CIDRS: &str = "10.244.0.0/16,fd00:10:244::/48,198.18.0.0/24,fd00:198:18::/64";
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
    /// Which families the node has addresses in. The IPv4 fields below are the node's plan in
    /// every family but are configured (and announced) only when the family has IPv4.
    #[serde(default)]
    pub family: IpFamily,
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
    /// IPv6 addresses, when the family has IPv6.
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
    fn new(prefix: &Prefix, index: u8, family: IpFamily) -> Self {
        let i = index;
        let i16 = u16::from(i);
        NodePlan {
            index: i,
            name: NodeName(i).to_string(),
            host_ns: prefix.host_ns(i),
            pod_ns: prefix.pod_ns(i),
            fabric_port: format!("n{i}"),
            family,
            host_v4: Ipv4Addr::new(198, 18, 0, i),
            pod_v4: Ipv4Addr::new(10, 244, i, 2),
            pod_gw_v4: Ipv4Addr::new(10, 244, i, 1),
            vtep_v4: Ipv4Addr::new(10, 244, i, 0),
            vtep_mac: format!("02:e4:0a:f4:{i:02x}:00"),
            v6: family.has_v6().then(|| NodeV6 {
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

    /// The addresses an agent on `network` announces (IPv4 first), only those of the family.
    pub fn addresses(&self, network: Network) -> Vec<IpAddr> {
        let mut out = Vec::new();
        if self.family.has_v4() {
            out.push(IpAddr::V4(match network {
                Network::Pod => self.pod_v4,
                Network::Host => self.host_v4,
            }));
        }
        if let Some(v6) = &self.v6 {
            out.push(IpAddr::V6(match network {
                Network::Pod => v6.pod,
                Network::Host => v6.host,
            }));
        }
        out
    }

    /// The host's address on the underlay that carries the overlay (the VXLAN local and remote
    /// address): IPv6 in an IPv6-only lab, IPv4 otherwise.
    pub fn underlay_addr(&self) -> IpAddr {
        match &self.v6 {
            Some(v6) if self.family.v6_underlay() => IpAddr::V6(v6.host),
            _ => IpAddr::V4(self.host_v4),
        }
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
    /// Plans a lab of `nodes` nodes whose hosts and pods have addresses of `family`.
    pub fn new(prefix: &Prefix, nodes: u32, family: IpFamily) -> Result<Self, PlanError> {
        let n = u8::try_from(nodes)
            .ok()
            .filter(|n| (2..=MAX_NODES).contains(n))
            .ok_or(PlanError::NodeCount(nodes))?;
        Ok(Plan {
            prefix: prefix.to_string(),
            fabric_ns: prefix.fabric_ns(),
            underlay_prefix_len: 24,
            nodes: (1..=n).map(|i| NodePlan::new(prefix, i, family)).collect(),
        })
    }

    /// The lab's IP family.
    pub fn family(&self) -> IpFamily {
        self.nodes.first().map(|n| n.family).unwrap_or_default()
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
        let (h, p) = (n.host_ns.as_str(), n.pod_ns.as_str());
        let fam = n.family;
        let mtu = fam.overlay_mtu();
        let mut sysctls = Vec::new();
        if fam.has_v4() {
            sysctls.extend([
                ("net.ipv4.ip_forward", "1"),
                // Pod-to-remote-host replies come back through the overlay, requests leave
                // through eth0: asymmetric on purpose (no masquerade), so no reverse-path filter.
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.default.rp_filter", "0"),
            ]);
        }
        // No duplicate address detection: a tentative link-local address blocks neighbour
        // discovery for a second or two, and the lab must answer the moment it is built.
        let no_dad = [
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
        ];
        if fam.has_v6() {
            sysctls.push(("net.ipv6.conf.all.forwarding", "1"));
            sysctls.extend(no_dad);
        }
        let mut c = vec![
            ip(h, "link set lo up"),
            ip(p, "link set lo up"),
            Cmd::sysctl(h, &sysctls),
        ];
        if fam.has_v6() {
            c.push(Cmd::sysctl(p, &no_dad));
        }
        // The underlay: a veth from the fabric bridge to the host's eth0.
        c.extend([
            ip(
                &self.fabric_ns,
                &format!(
                    "link add {} type veth peer name eth0 netns {h}",
                    n.fabric_port
                ),
            ),
            ip(
                &self.fabric_ns,
                &format!("link set {} master br0 up", n.fabric_port),
            ),
        ]);
        if fam.has_v4() {
            let len = self.underlay_prefix_len;
            c.push(ip(h, &format!("addr add {}/{len} dev eth0", n.host_v4)));
        }
        if let Some(v6) = &n.v6 {
            c.push(ip(h, &format!("addr add {}/64 dev eth0 nodad", v6.host)));
        }
        c.push(ip(h, "link set eth0 up"));
        // The pod: a veth from the host namespace into the pod namespace.
        c.push(ip(
            h,
            &format!("link add pod0 mtu {mtu} type veth peer name eth0 mtu {mtu} netns {p}"),
        ));
        if fam.has_v4() {
            c.push(ip(h, &format!("addr add {}/24 dev pod0", n.pod_gw_v4)));
            c.push(ip(p, &format!("addr add {}/24 dev eth0", n.pod_v4)));
        }
        if let Some(v6) = &n.v6 {
            c.push(ip(h, &format!("addr add {}/64 dev pod0 nodad", v6.pod_gw)));
            c.push(ip(p, &format!("addr add {}/64 dev eth0 nodad", v6.pod)));
        }
        c.extend([ip(h, "link set pod0 up"), ip(p, "link set eth0 up")]);
        if fam.has_v4() {
            c.push(ip(p, &format!("route add default via {}", n.pod_gw_v4)));
        }
        if let Some(v6) = &n.v6 {
            c.push(ip(p, &format!("-6 route add default via {}", v6.pod_gw)));
        }
        // The overlay endpoint, flannel style: fixed MAC, no learning, peers programmed
        // statically, carried over the underlay of the lab's family.
        c.push(ip(
            h,
            &format!(
                "link add vxlan0 address {} mtu {mtu} type vxlan id {VNI} local {} dev eth0 dstport {VXLAN_PORT} nolearning",
                n.vtep_mac,
                n.underlay_addr()
            ),
        ));
        if fam.has_v4() {
            c.push(ip(h, &format!("addr add {}/32 dev vxlan0", n.vtep_v4)));
        }
        if let Some(v6) = &n.v6 {
            c.push(ip(h, &format!("addr add {}/128 dev vxlan0 nodad", v6.vtep)));
        }
        c.push(ip(h, "link set vxlan0 up"));
        c
    }
}

/// `ip -n NS WORDS...`, from one line (lab names and addresses never contain spaces).
fn ip(ns: &str, line: &str) -> Cmd {
    Cmd::ip(Some(ns), line.split_whitespace())
}

/// Routes, neighbour and forwarding entries on `n` for reaching `peer`'s pods over VXLAN.
fn overlay_peer(n: &NodePlan, peer: &NodePlan) -> Vec<Cmd> {
    let h = n.host_ns.as_str();
    let mut c = Vec::new();
    if n.family.has_v4() {
        c.extend([
            ip(
                h,
                &format!(
                    "route add 10.244.{}.0/24 via {} dev vxlan0 onlink",
                    peer.index, peer.vtep_v4
                ),
            ),
            ip(
                h,
                &format!(
                    "neigh add {} lladdr {} dev vxlan0 nud permanent",
                    peer.vtep_v4, peer.vtep_mac
                ),
            ),
        ]);
    }
    if let Some(v6) = &peer.v6 {
        c.extend([
            ip(
                h,
                &format!("-6 route add {0}/64 via {0} dev vxlan0 onlink", v6.vtep),
            ),
            ip(
                h,
                &format!(
                    "-6 neigh add {} lladdr {} dev vxlan0 nud permanent",
                    v6.vtep, peer.vtep_mac
                ),
            ),
        ]);
    }
    c.push(Cmd::in_ns(
        h,
        "bridge",
        format!(
            "fdb append {} dev vxlan0 dst {}",
            peer.vtep_mac,
            peer.underlay_addr()
        )
        .split_whitespace(),
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
            let err = Plan::new(&prefix(), bad, IpFamily::Ipv4).expect_err("bad count");
            assert_eq!(
                err.to_string(),
                format!("--nodes must be between 2 and 32, not {bad}")
            );
        }
        assert_eq!(
            Plan::new(&prefix(), 32, IpFamily::Ipv4).map(|p| p.nodes.len()),
            Ok(32)
        );
    }

    #[test]
    fn addressing_scheme() {
        let plan = Plan::new(&prefix(), 4, IpFamily::Dual).expect("plan");
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
        assert_eq!(plan.family(), IpFamily::Dual);
    }

    #[test]
    fn every_address_is_inside_the_lab_ranges() {
        let plan = Plan::new(&prefix(), 32, IpFamily::Ipv4).expect("plan");
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
        let plan = Plan::new(&prefix(), 2, IpFamily::Ipv4).expect("plan");
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

    #[test]
    fn ipv6_only_nodes_have_no_ipv4_and_a_vxlan_over_ipv6() {
        let plan = Plan::new(&prefix(), 2, IpFamily::Ipv6).expect("plan");
        assert_eq!(plan.family(), IpFamily::Ipv6);
        let n1 = plan.node(1).expect("node1");
        assert_eq!(
            n1.addresses(Network::Pod),
            vec!["fd00:10:244:1::2".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(
            n1.addresses(Network::Host),
            vec!["fd00:198:18::1".parse::<IpAddr>().expect("ip")]
        );
        assert!(plan.endpoints().iter().all(|e| e.addr.is_ipv6()));
        assert_eq!(n1.underlay_addr().to_string(), "fd00:198:18::1");

        let lines: Vec<String> = plan.setup().iter().map(ToString::to_string).collect();
        let node1: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .filter(|l| l.contains("eml1-node1-"))
            .collect();
        assert_eq!(
            node1,
            vec![
                "ip -n eml1-node1-host link set lo up",
                "ip -n eml1-node1-pod link set lo up",
                "ip netns exec eml1-node1-host sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0",
                "ip netns exec eml1-node1-pod sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0",
                "ip -n eml1-fabric link add n1 type veth peer name eth0 netns eml1-node1-host",
                "ip -n eml1-node1-host addr add fd00:198:18::1/64 dev eth0 nodad",
                "ip -n eml1-node1-host link set eth0 up",
                "ip -n eml1-node1-host link add pod0 mtu 1430 type veth peer name eth0 mtu 1430 netns eml1-node1-pod",
                "ip -n eml1-node1-host addr add fd00:10:244:1::1/64 dev pod0 nodad",
                "ip -n eml1-node1-pod addr add fd00:10:244:1::2/64 dev eth0 nodad",
                "ip -n eml1-node1-host link set pod0 up",
                "ip -n eml1-node1-pod link set eth0 up",
                "ip -n eml1-node1-pod -6 route add default via fd00:10:244:1::1",
                "ip -n eml1-node1-host link add vxlan0 address 02:e4:0a:f4:01:00 mtu 1430 type vxlan id 1 local fd00:198:18::1 dev eth0 dstport 8472 nolearning",
                "ip -n eml1-node1-host addr add fd00:10:244:1::/128 dev vxlan0 nodad",
                "ip -n eml1-node1-host link set vxlan0 up",
                "ip -n eml1-node1-host -6 route add fd00:10:244:2::/64 via fd00:10:244:2:: dev vxlan0 onlink",
                "ip -n eml1-node1-host -6 neigh add fd00:10:244:2:: lladdr 02:e4:0a:f4:02:00 dev vxlan0 nud permanent",
                "ip netns exec eml1-node1-host bridge fdb append 02:e4:0a:f4:02:00 dev vxlan0 dst fd00:198:18::2",
            ]
        );
        // No IPv4 address, route or sysctl anywhere in the lab.
        for l in &lines {
            assert!(
                !l.contains("198.18.0.") && !l.contains("10.244.") && !l.contains("net.ipv4"),
                "{l}"
            );
        }
    }

    #[test]
    fn dual_stack_keeps_the_overlay_on_the_ipv4_underlay() {
        let plan = Plan::new(&prefix(), 2, IpFamily::Dual).expect("plan");
        let lines: Vec<String> = plan.setup().iter().map(ToString::to_string).collect();
        for l in [
            "ip -n eml1-node1-host link add vxlan0 address 02:e4:0a:f4:01:00 mtu 1450 type vxlan id 1 local 198.18.0.1 dev eth0 dstport 8472 nolearning",
            "ip netns exec eml1-node1-host bridge fdb append 02:e4:0a:f4:02:00 dev vxlan0 dst 198.18.0.2",
            "ip -n eml1-node1-host -6 route add fd00:10:244:2::/64 via fd00:10:244:2:: dev vxlan0 onlink",
            "ip -n eml1-node1-host route add 10.244.2.0/24 via 10.244.2.0 dev vxlan0 onlink",
            "ip -n eml1-node1-pod -6 route add default via fd00:10:244:1::1",
            "ip -n eml1-node1-pod route add default via 10.244.1.1",
        ] {
            assert!(lines.iter().any(|x| x == l), "missing `{l}`");
        }
    }

    #[test]
    fn a_state_file_without_a_family_reads_as_ipv4() {
        let plan = Plan::new(&prefix(), 2, IpFamily::Ipv4).expect("plan");
        let mut v = serde_json::to_value(&plan).expect("json");
        for n in v["nodes"].as_array_mut().expect("nodes") {
            n.as_object_mut().expect("node").remove("family");
        }
        let back: Plan = serde_json::from_value(v).expect("plan");
        assert_eq!(back, plan);
    }
}
