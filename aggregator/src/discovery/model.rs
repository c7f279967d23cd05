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
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::graph::{AgentKey, Endpoint, endpoint_id};
use crate::policy::PlannedTarget;

mod node;

use node::truncate;
pub use node::{
    DRAIN_TAINTS, HostAddressType, NodeInfo, ReadyCondition, first_per_family, node_info,
};

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
    /// A node running a host-network agent has no address of the chosen type, and its agent pod
    /// reports none yet: it gets no host targets until one of them appears.
    #[error(
        "node {node}: runs a host agent but has no usable {address_type} address (and its agent pod reports none)"
    )]
    NoHostAddress {
        /// Node name.
        node: String,
        /// The `--host-address-type` in force.
        address_type: HostAddressType,
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
    /// Every agent pod by name, both of a rollout's pair included: who an agent token may name
    /// (agent authentication binds a session to its own pod, not to the one chosen above).
    pub agent_pods: BTreeMap<String, AgentPod>,
    /// Which node address type is a host address.
    pub host_address_type: HostAddressType,
    /// Every node's targets, sorted, computed once per model: an agent's pinglist is this list
    /// minus its own node (and foreign families), so a reassignment round over N agents costs
    /// N filtered copies, not N rebuilds.
    all_targets: Vec<PlannedTarget>,
}

impl ClusterModel {
    /// Builds the model with the default host address type (`InternalIP`).
    #[must_use]
    pub fn build<'a>(
        nodes: impl IntoIterator<Item = &'a Node>,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> (Self, Vec<ModelWarning>) {
        Self::build_with(HostAddressType::default(), nodes, pods)
    }

    /// Builds the model from the reflector stores' contents, host addresses of type
    /// `host_address_type`. Warnings say what was skipped.
    #[must_use]
    pub fn build_with<'a>(
        host_address_type: HostAddressType,
        nodes: impl IntoIterator<Item = &'a Node>,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> (Self, Vec<ModelWarning>) {
        let mut warnings = Vec::new();
        let mut m = Self {
            host_address_type,
            ..Self::default()
        };
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
            m.agent_pods.insert(p.name.clone(), p.clone());
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
        for key in m.agents.keys() {
            if key.network == Network::Host
                && m.nodes.contains_key(&key.node)
                && m.host_addresses(&key.node).is_empty()
            {
                warnings.push(ModelWarning::NoHostAddress {
                    node: key.node.to_string(),
                    address_type: host_address_type,
                });
            }
        }
        m.all_targets = m.compute_targets();
        (m, warnings)
    }

    /// Nodes whose edges are expected to fail: cordoned, drained or being deleted (planned).
    #[must_use]
    pub fn expected_down_nodes(&self) -> BTreeSet<Arc<str>> {
        self.nodes
            .values()
            .filter(|n| n.expected_down())
            .map(|n| n.name.clone())
            .collect()
    }

    /// Node to zone, for the nodes whose zone label is set.
    #[must_use]
    pub fn node_zones(&self) -> BTreeMap<Arc<str>, Arc<str>> {
        self.nodes
            .values()
            .filter_map(|n| Some((n.name.clone(), n.zone.clone()?)))
            .collect()
    }

    /// Every node whose Ready condition is not `True`, with the condition as one line of
    /// evidence (status, since when, reason) for readers of its edges.
    #[must_use]
    pub fn not_ready_nodes(&self) -> BTreeMap<Arc<str>, Arc<str>> {
        self.nodes
            .values()
            .filter_map(|n| Some((n.name.clone(), Arc::from(n.ready.evidence()?))))
            .collect()
    }

    /// The host addresses of `node`, at most one per family: the first address of the
    /// `--host-address-type` per family in `status.addresses` order, else (a node that lists
    /// none of that type) the first per family of what its host-network agent pod reports,
    /// which the kubelet copies from the node; else none.
    #[must_use]
    pub fn host_addresses(&self, node: &Arc<str>) -> Vec<IpAddr> {
        if let Some(n) = self.nodes.get(node) {
            let own = first_per_family(n.addresses(self.host_address_type));
            if !own.is_empty() {
                return own;
            }
        }
        self.agents
            .get(&AgentKey {
                node: node.clone(),
                network: Network::Host,
            })
            .map(|p| first_per_family(&p.ips))
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

    /// Targets exist only where agents run: a node's pod-network addresses are its pod agent's
    /// IPs, the first per family like every target (none until it has them), and it has host addresses only when a host-network agent
    /// pod is on it, running or still starting (the host addresses come from the Node, so a
    /// starting node is probed as soon as its agent is scheduled). Nodes no agent can run on
    /// (Fargate, virtual-kubelet, Windows) are therefore not targets.
    fn compute_targets(&self) -> Vec<PlannedTarget> {
        let mut out = Vec::new();
        for node in self.nodes.values() {
            let node_down = node.expected_down();
            let agent = |network| {
                self.agents.get(&AgentKey {
                    node: node.name.clone(),
                    network,
                })
            };
            if let Some(p) = agent(Network::Pod) {
                for addr in first_per_family(&p.ips) {
                    out.push(PlannedTarget {
                        id: endpoint_id(&node.name, Network::Pod, addr),
                        node: node.name.clone(),
                        network: Network::Pod,
                        addr,
                        expected_down: node_down || p.deleting,
                    });
                }
            }
            if agent(Network::Host).is_some() {
                // The node's kernel answers, not the agent: a terminating host agent does not
                // make the host address go away.
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
        }
        out.sort_by(PlannedTarget::slot_order);
        out
    }

    /// The pinglist of `agent`: every other node's pod-agent addresses and host addresses
    /// (where agents run, see `compute_targets`).
    ///
    /// Targets of an address family the agent has no address of are left out (an IPv4-only
    /// agent cannot probe an IPv6-only node); when the model does not know the agent's own
    /// addresses, `announced` (its Hello) decides, and when that is empty too every family is kept.
    /// Sorted by (node, network, address), so slot order is stable.
    #[must_use]
    pub fn targets(&self, agent: &AgentKey, announced: &[IpAddr]) -> Vec<PlannedTarget> {
        let (has_v4, has_v6) = self.families(agent, announced);
        self.all_targets
            .iter()
            .filter(|t| t.node != agent.node && if t.addr.is_ipv4() { has_v4 } else { has_v6 })
            .cloned()
            .collect()
    }

    /// Which address families (IPv4, IPv6) `agent` probes: those it has an address of (see
    /// [`ClusterModel::targets`]).
    #[must_use]
    pub fn families(&self, agent: &AgentKey, announced: &[IpAddr]) -> (bool, bool) {
        let mut own = self.source_addresses(agent);
        if own.is_empty() {
            own = announced.to_vec();
        }
        if own.is_empty() {
            (true, true)
        } else {
            (
                own.iter().any(IpAddr::is_ipv4),
                own.iter().any(IpAddr::is_ipv6),
            )
        }
    }

    /// Every agent's targets before its own node and families are left out, sorted by (node,
    /// network, address).
    #[must_use]
    pub fn all_targets(&self) -> &[PlannedTarget] {
        &self.all_targets
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
        let mut known = self.source_addresses(agent);
        if agent.network == Network::Host
            && let Some(n) = self.nodes.get(&agent.node)
        {
            // A host agent announces its pod IP, the kubelet's node IP: any of the node's
            // addresses, whichever type and NIC was chosen for probing.
            let pod_ips = self.agents.get(agent).map_or(&[][..], |p| p.ips.as_slice());
            for &a in n.internal_ips.iter().chain(&n.external_ips).chain(pod_ips) {
                if !known.contains(&a) {
                    known.push(a);
                }
            }
        }
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
