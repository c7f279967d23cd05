//! The cluster model: what the pinglists are computed from, built purely from Node and Pod objects.
//!
//! Kept apart from the watch machinery so every rule (which address is a host address, what counts
//! as draining, what a malformed object turns into) is a plain function tested on plain objects.
//! Nothing here trusts the API server: a missing field, an address that does not parse or an
//! unknown condition becomes "absent", never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use echomesh_proto::v1::Network;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::graph::{AgentKey, Endpoint, endpoint_id};
use crate::policy::PlannedTarget;

/// Taints that mean "this node is being emptied" even before it is cordoned.
const DRAIN_TAINTS: &[&str] = &[
    "node.kubernetes.io/unschedulable",
    "ToBeDeletedByClusterAutoscaler",
    "karpenter.sh/disrupted",
];

/// What the model knows about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: Arc<str>,
    /// `InternalIP` addresses, both families, in the order the kubelet reported them.
    pub internal_ips: Vec<IpAddr>,
    /// Pod CIDRs (`spec.podCIDRs`, or `spec.podCIDR` on old clusters); invalid entries dropped.
    pub pod_cidrs: Vec<IpNet>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// Cordoned (`spec.unschedulable`) or carrying a drain taint.
    pub draining: bool,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

impl NodeInfo {
    /// Failures of edges towards this node are expected: NotReady, draining or being deleted.
    #[must_use]
    pub fn expected_down(&self) -> bool {
        !self.ready || self.draining || self.deleting
    }
}

/// What the model knows about one agent pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPod {
    /// Pod name.
    pub name: String,
    /// The node it is scheduled on.
    pub node: Arc<str>,
    /// `host` when `spec.hostNetwork` is true, `pod` otherwise.
    pub network: Network,
    /// `status.podIPs` (or `status.podIP`), both families; empty until the pod has started.
    pub ips: Vec<IpAddr>,
    /// `metadata.deletionTimestamp` is set (the pod is terminating).
    pub deleting: bool,
}

impl AgentPod {
    /// The key an agent on this pod announces in its Hello.
    #[must_use]
    pub fn key(&self) -> AgentKey {
        AgentKey {
            node: self.node.clone(),
            network: self.network,
        }
    }
}

/// Why an object was left out of the model or only partly used (logged, never fatal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelWarning {
    /// An object without a name cannot be keyed.
    #[error("{kind} without metadata.name ignored")]
    Unnamed {
        /// `Node` or `Pod`.
        kind: &'static str,
    },
    /// A node without a usable InternalIP: it gets no host targets unless its host agent reports IPs.
    #[error("node {node}: no usable InternalIP address")]
    NoInternalIp {
        /// Node name.
        node: String,
    },
    /// An address or CIDR that does not parse.
    #[error("{object}: {field} {value:?} is not valid, ignored")]
    BadAddress {
        /// `node/NAME` or `pod/NAME`.
        object: String,
        /// Which field.
        field: &'static str,
        /// The offending value (truncated).
        value: String,
    },
    /// An agent pod not (yet) scheduled to a node.
    #[error("pod {pod}: not scheduled to a node yet")]
    Unscheduled {
        /// Pod name.
        pod: String,
    },
    /// A pod in a terminal phase (evicted, completed) is not an agent any more.
    #[error("pod {pod}: phase {phase}, ignored")]
    Finished {
        /// Pod name.
        pod: String,
        /// `Failed` or `Succeeded`.
        phase: String,
    },
    /// Two running agent pods claim the same node and network (a rollout in progress).
    #[error("pods {kept} and {dropped} both claim {key}; using {kept}")]
    DuplicateAgent {
        /// Node and network.
        key: String,
        /// The pod used.
        kept: String,
        /// The pod ignored.
        dropped: String,
    },
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Reads the model's view of a Node. `None` (with a warning) when it has no name.
pub fn node_info(node: &Node, warnings: &mut Vec<ModelWarning>) -> Option<NodeInfo> {
    let Some(name) = node.metadata.name.as_deref().filter(|n| !n.is_empty()) else {
        warnings.push(ModelWarning::Unnamed { kind: "Node" });
        return None;
    };
    let object = || format!("node/{name}");
    let mut internal_ips = Vec::new();
    let status = node.status.as_ref();
    for a in status
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
    {
        if a.type_ != "InternalIP" {
            continue;
        }
        match a.address.parse::<IpAddr>() {
            Ok(ip) if !internal_ips.contains(&ip) => internal_ips.push(ip),
            Ok(_) => {}
            Err(_) => warnings.push(ModelWarning::BadAddress {
                object: object(),
                field: "status.addresses[InternalIP]",
                value: truncate(&a.address),
            }),
        }
    }
    if internal_ips.is_empty() {
        warnings.push(ModelWarning::NoInternalIp {
            node: name.to_string(),
        });
    }
    let spec = node.spec.as_ref();
    let mut cidr_texts: Vec<&str> = spec
        .and_then(|s| s.pod_cidrs.as_ref())
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if cidr_texts.is_empty()
        && let Some(c) = spec.and_then(|s| s.pod_cidr.as_deref())
    {
        cidr_texts.push(c);
    }
    let mut pod_cidrs = Vec::new();
    for c in cidr_texts {
        match c.parse::<IpNet>() {
            Ok(n) if !pod_cidrs.contains(&n) => pod_cidrs.push(n),
            Ok(_) => {}
            Err(_) => warnings.push(ModelWarning::BadAddress {
                object: object(),
                field: "spec.podCIDRs",
                value: truncate(c),
            }),
        }
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let tainted = spec
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .any(|t| DRAIN_TAINTS.contains(&t.key.as_str()));
    let draining = spec.and_then(|s| s.unschedulable).unwrap_or(false) || tainted;
    Some(NodeInfo {
        name: name.into(),
        internal_ips,
        pod_cidrs,
        ready,
        draining,
        deleting: node.metadata.deletion_timestamp.is_some(),
    })
}

/// Reads the model's view of an agent Pod. `None` (with a warning) when it has no name or node.
pub fn agent_pod(pod: &Pod, warnings: &mut Vec<ModelWarning>) -> Option<AgentPod> {
    let Some(name) = pod.metadata.name.as_deref().filter(|n| !n.is_empty()) else {
        warnings.push(ModelWarning::Unnamed { kind: "Pod" });
        return None;
    };
    let spec = pod.spec.as_ref();
    let Some(node) = spec
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
    else {
        warnings.push(ModelWarning::Unscheduled {
            pod: name.to_string(),
        });
        return None;
    };
    let network = if spec.and_then(|s| s.host_network).unwrap_or(false) {
        Network::Host
    } else {
        Network::Pod
    };
    let status = pod.status.as_ref();
    if let Some(phase @ ("Failed" | "Succeeded")) = status.and_then(|s| s.phase.as_deref()) {
        // An evicted or finished agent pod keeps its old IPs in status; the DaemonSet's
        // replacement is the agent now.
        warnings.push(ModelWarning::Finished {
            pod: name.to_string(),
            phase: phase.to_string(),
        });
        return None;
    }
    let mut texts: Vec<&str> = status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .collect();
    if texts.is_empty()
        && let Some(ip) = status.and_then(|s| s.pod_ip.as_deref())
    {
        texts.push(ip);
    }
    let mut ips = Vec::new();
    for t in texts {
        match t.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) => warnings.push(ModelWarning::BadAddress {
                object: format!("pod/{name}"),
                field: "status.podIPs",
                value: truncate(t),
            }),
        }
    }
    Some(AgentPod {
        name: name.to_string(),
        node: node.into(),
        network,
        ips,
        deleting: pod.metadata.deletion_timestamp.is_some(),
    })
}

/// Nodes and agent pods, keyed and sorted, ready to compute pinglists from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterModel {
    /// Every node by name.
    pub nodes: BTreeMap<Arc<str>, NodeInfo>,
    /// One agent pod per (node, network): the live one when a rollout briefly runs two.
    pub agents: BTreeMap<AgentKey, AgentPod>,
    /// Every node's targets, sorted, computed once per model: an agent's pinglist is this list
    /// minus its own node (and foreign families), so a reassignment round over N agents costs
    /// N filtered copies, not N rebuilds.
    all_targets: Vec<PlannedTarget>,
}

impl ClusterModel {
    /// Builds the model from the reflector stores' contents. Warnings say what was skipped.
    #[must_use]
    pub fn build<'a>(
        nodes: impl IntoIterator<Item = &'a Node>,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> (Self, Vec<ModelWarning>) {
        let mut warnings = Vec::new();
        let mut m = Self::default();
        for n in nodes {
            if let Some(info) = node_info(n, &mut warnings) {
                m.nodes.insert(info.name.clone(), info);
            }
        }
        let mut pods: Vec<AgentPod> = pods
            .into_iter()
            .filter_map(|p| agent_pod(p, &mut warnings))
            .collect();
        // Deterministic choice between two pods of one key: a running one with IPs beats a
        // terminating one, then by name.
        pods.sort_by(|a, b| {
            (a.deleting, a.ips.is_empty(), &a.name).cmp(&(b.deleting, b.ips.is_empty(), &b.name))
        });
        for p in pods {
            let key = p.key();
            if let Some(kept) = m.agents.get(&key) {
                warnings.push(ModelWarning::DuplicateAgent {
                    key: key.to_string(),
                    kept: kept.name.clone(),
                    dropped: p.name,
                });
                continue;
            }
            m.agents.insert(key, p);
        }
        m.all_targets = m.compute_targets();
        (m, warnings)
    }

    /// Nodes whose edges are expected to fail (NotReady, draining, being deleted).
    #[must_use]
    pub fn expected_down_nodes(&self) -> BTreeSet<Arc<str>> {
        self.nodes
            .values()
            .filter(|n| n.expected_down())
            .map(|n| n.name.clone())
            .collect()
    }

    /// The host addresses of `node`: its InternalIPs, else what its host-network agent pod reports
    /// (the kubelet copies the node's addresses there), else none.
    #[must_use]
    pub fn host_addresses(&self, node: &Arc<str>) -> Vec<IpAddr> {
        if let Some(n) = self.nodes.get(node)
            && !n.internal_ips.is_empty()
        {
            return n.internal_ips.clone();
        }
        self.agents
            .get(&AgentKey {
                node: node.clone(),
                network: Network::Host,
            })
            .map(|p| p.ips.clone())
            .unwrap_or_default()
    }

    /// The addresses an agent probes *from*, when the model knows them (for family matching).
    fn source_addresses(&self, agent: &AgentKey) -> Vec<IpAddr> {
        match agent.network {
            Network::Host => self.host_addresses(&agent.node),
            _ => self
                .agents
                .get(agent)
                .map(|p| p.ips.clone())
                .unwrap_or_default(),
        }
    }

    fn compute_targets(&self) -> Vec<PlannedTarget> {
        let mut out = Vec::new();
        for node in self.nodes.values() {
            let node_down = node.expected_down();
            let pod_agent = self.agents.get(&AgentKey {
                node: node.name.clone(),
                network: Network::Pod,
            });
            if let Some(p) = pod_agent {
                for &addr in &p.ips {
                    out.push(PlannedTarget {
                        id: endpoint_id(&node.name, Network::Pod, addr),
                        node: node.name.clone(),
                        network: Network::Pod,
                        addr,
                        expected_down: node_down || p.deleting,
                    });
                }
            }
            for addr in self.host_addresses(&node.name) {
                out.push(PlannedTarget {
                    id: endpoint_id(&node.name, Network::Host, addr),
                    node: node.name.clone(),
                    network: Network::Host,
                    addr,
                    expected_down: node_down,
                });
            }
        }
        out.sort_by(|a, b| (&a.node, a.network, a.addr).cmp(&(&b.node, b.network, b.addr)));
        out
    }

    /// The pinglist of `agent`: every other node's pod-agent addresses and host addresses.
    ///
    /// Targets of an address family the agent has no address of are left out (an IPv4-only
    /// agent cannot probe an IPv6-only node); when the model does not know the agent's own
    /// addresses, `announced` (its Hello) decides, and when that is empty too every family is kept.
    /// Sorted by (node, network, address), so slot order is stable.
    #[must_use]
    pub fn targets(&self, agent: &AgentKey, announced: &[IpAddr]) -> Vec<PlannedTarget> {
        let mut own = self.source_addresses(agent);
        if own.is_empty() {
            own = announced.to_vec();
        }
        let (has_v4, has_v6) = if own.is_empty() {
            (true, true)
        } else {
            (
                own.iter().any(IpAddr::is_ipv4),
                own.iter().any(IpAddr::is_ipv6),
            )
        };
        self.all_targets
            .iter()
            .filter(|t| t.node != agent.node && if t.addr.is_ipv4() { has_v4 } else { has_v6 })
            .cloned()
            .collect()
    }

    /// Every target endpoint of the model by id (for naming edges whose agent is not connected).
    #[must_use]
    pub fn endpoints(&self) -> std::collections::HashMap<u64, Endpoint> {
        self.all_targets
            .iter()
            .map(|t| {
                (
                    t.id,
                    Endpoint {
                        node: t.node.clone(),
                        network: t.network,
                        addr: t.addr,
                    },
                )
            })
            .collect()
    }

    /// Checks an agent's Hello against the model: `None` when it matches, else why not.
    ///
    /// Announcing fewer addresses than the API server lists is fine (the downward API gives an
    /// agent one pod IP even on dual-stack clusters); announcing one the API server does not list
    /// for that pod or node means a stale or misconfigured agent.
    #[must_use]
    pub fn hello_mismatch(&self, agent: &AgentKey, announced: &[IpAddr]) -> Option<String> {
        if !self.nodes.contains_key(&agent.node) {
            return Some(format!("node {} is not in the cluster model", agent.node));
        }
        let known = self.source_addresses(agent);
        if known.is_empty() {
            return None;
        }
        let foreign: Vec<String> = announced
            .iter()
            .filter(|a| !known.contains(a))
            .map(ToString::to_string)
            .collect();
        (!foreign.is_empty()).then(|| {
            format!(
                "announced {} but the API server lists {known:?}",
                foreign.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests;
