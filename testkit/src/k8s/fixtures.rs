//! Builders for the Node and Pod objects discovery reads, shaped like what a kubelet and the
//! DaemonSet controller write (unit and integration tests, the mocked API server).
//!
//! Builders rather than literal JSON everywhere so a test says only what it is about
//! (`node("b").not_ready()`); the recorded-style JSON under `aggregator/tests/fixtures/` checks
//! that real API output parses the same way.

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, Pod, PodIP, PodSpec, PodStatus, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

/// The agent label every echomesh agent pod carries (the default `--agent-selector`).
pub const AGENT_LABEL: (&str, &str) = ("app.kubernetes.io/name", "echomesh-agent");

/// A Ready, schedulable node with the given InternalIPs (IPv4 and/or IPv6).
#[must_use]
pub fn node(name: &str, internal_ips: &[&str]) -> Node {
    let mut addresses: Vec<NodeAddress> = internal_ips
        .iter()
        .map(|ip| NodeAddress {
            address: (*ip).to_string(),
            type_: "InternalIP".into(),
        })
        .collect();
    addresses.push(NodeAddress {
        address: name.to_string(),
        type_: "Hostname".into(),
    });
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            resource_version: Some("1".into()),
            uid: Some(format!("uid-node-{name}")),
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some("kubelet".into()),
                operation: Some("Update".into()),
                ..ManagedFieldsEntry::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidrs: Some(vec!["10.244.0.0/24".into()]),
            pod_cidr: Some("10.244.0.0/24".into()),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(addresses),
            conditions: Some(vec![condition("Ready", "True")]),
            ..NodeStatus::default()
        }),
    }
}

fn condition(type_: &str, status: &str) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: status.into(),
        ..NodeCondition::default()
    }
}

/// When the builders' NotReady conditions say the node stopped being Ready.
pub const NOT_READY_SINCE: &str = "2026-01-02T03:04:05Z";

fn not_ready_condition(status: &str, reason: &str) -> NodeCondition {
    NodeCondition {
        last_transition_time: NOT_READY_SINCE.parse().ok().map(Time),
        reason: Some(reason.into()),
        ..condition("Ready", status)
    }
}

/// Changes to a built [`Node`].
pub trait NodeExt {
    /// The Ready condition is `False` since [`NOT_READY_SINCE`] (the kubelet reported a problem,
    /// reason `KubeletNotReady`).
    #[must_use]
    fn not_ready(self) -> Self;
    /// The Ready condition is `Unknown` since [`NOT_READY_SINCE`], reason `NodeStatusUnknown`:
    /// what the node lifecycle controller writes when the kubelet's heartbeats stop arriving
    /// (a partition, a crashed node).
    #[must_use]
    fn unreachable(self) -> Self;
    /// Adds addresses of `type_` (e.g. a second `InternalIP` NIC, or `ExternalIP`s).
    #[must_use]
    fn with_addresses(self, type_: &str, ips: &[&str]) -> Self;
    /// `kubectl cordon`.
    #[must_use]
    fn cordoned(self) -> Self;
    /// A drain taint without the cordon (e.g. the cluster autoscaler's).
    #[must_use]
    fn tainted(self, key: &str) -> Self;
    /// `metadata.deletionTimestamp` set.
    #[must_use]
    fn deleting(self) -> Self;
    /// Sets the resourceVersion.
    #[must_use]
    fn rv(self, rv: u64) -> Self;
}

impl NodeExt for Node {
    fn not_ready(mut self) -> Self {
        if let Some(s) = self.status.as_mut() {
            s.conditions = Some(vec![not_ready_condition("False", "KubeletNotReady")]);
        }
        self
    }

    fn unreachable(mut self) -> Self {
        if let Some(s) = self.status.as_mut() {
            s.conditions = Some(vec![not_ready_condition("Unknown", "NodeStatusUnknown")]);
        }
        self
    }

    fn with_addresses(mut self, type_: &str, ips: &[&str]) -> Self {
        let addrs = self
            .status
            .get_or_insert_default()
            .addresses
            .get_or_insert_default();
        for ip in ips {
            addrs.push(NodeAddress {
                address: (*ip).to_string(),
                type_: type_.into(),
            });
        }
        self
    }

    fn cordoned(mut self) -> Self {
        if let Some(s) = self.spec.as_mut() {
            s.unschedulable = Some(true);
        }
        self
    }

    fn tainted(mut self, key: &str) -> Self {
        if let Some(s) = self.spec.as_mut() {
            s.taints.get_or_insert_with(Vec::new).push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            });
        }
        self
    }

    fn deleting(mut self) -> Self {
        self.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        self
    }

    fn rv(mut self, rv: u64) -> Self {
        self.metadata.resource_version = Some(rv.to_string());
        self
    }
}

/// A running agent pod on `node`; `host_network` picks the DaemonSet (echomesh-agent-host or
/// echomesh-agent-pod), `ips` its `status.podIPs`.
#[must_use]
pub fn agent_pod(node: &str, host_network: bool, ips: &[&str]) -> Pod {
    let component = if host_network {
        "agent-host"
    } else {
        "agent-pod"
    };
    let name = format!("echomesh-{component}-{node}");
    Pod {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some("echomesh".into()),
            resource_version: Some("1".into()),
            uid: Some(format!("uid-pod-{name}")),
            labels: Some(
                [
                    (AGENT_LABEL.0.to_string(), AGENT_LABEL.1.to_string()),
                    (
                        "app.kubernetes.io/component".to_string(),
                        component.to_string(),
                    ),
                ]
                .into(),
            ),
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some("kubelet".into()),
                ..ManagedFieldsEntry::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            host_network: host_network.then_some(true),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: ips.first().map(|s| (*s).to_string()),
            pod_ips: Some(
                ips.iter()
                    .map(|ip| PodIP {
                        ip: (*ip).to_string(),
                    })
                    .collect(),
            ),
            ..PodStatus::default()
        }),
    }
}

/// An agent pod on `node` that is scheduled but not started: phase `Pending`, no IPs yet.
#[must_use]
pub fn pending_agent_pod(node: &str, host_network: bool) -> Pod {
    let mut p = agent_pod(node, host_network, &[]);
    if let Some(s) = p.status.as_mut() {
        s.phase = Some("Pending".into());
        s.pod_ips = None;
    }
    p
}

/// A small cluster: nodes `a`, `b`, `c` (IPv4 host addresses 192.168.0.1..3), each with a pod
/// agent (10.244.N.10) and a host agent.
#[must_use]
pub fn three_nodes() -> (Vec<Node>, Vec<Pod>) {
    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        let host = format!("192.168.0.{}", i + 1);
        nodes.push(node(n, &[&host]));
        pods.push(agent_pod(n, false, &[&format!("10.244.{i}.10")]));
        pods.push(agent_pod(n, true, &[&host]));
    }
    (nodes, pods)
}

/// The name of node `i` of [`cluster`].
#[must_use]
pub fn cluster_node_name(i: u32) -> String {
    format!("node-{i:05}")
}

/// The host (InternalIP) and pod-agent addresses of node `i` of [`cluster`]: 172.16.0.0/12 and
/// 10.128.0.0/9, distinct up to a million nodes.
#[must_use]
pub fn cluster_addresses(i: u32) -> (std::net::Ipv4Addr, std::net::Ipv4Addr) {
    let host = std::net::Ipv4Addr::from(0xAC10_0000 + i + 1);
    let pod = std::net::Ipv4Addr::from(0x0A80_0000 + (i << 8) + 10);
    (host, pod)
}

/// A large cluster: `n` Ready nodes ([`cluster_node_name`], [`cluster_addresses`]), each with
/// a pod agent and a host agent — 2·`n` agent pods.
#[must_use]
pub fn cluster(n: u32) -> (Vec<Node>, Vec<Pod>) {
    let mut nodes = Vec::with_capacity(n as usize);
    let mut pods = Vec::with_capacity(2 * n as usize);
    for i in 0..n {
        let name = cluster_node_name(i);
        let (host, pod) = cluster_addresses(i);
        let (host, pod) = (host.to_string(), pod.to_string());
        nodes.push(node(&name, &[&host]));
        pods.push(agent_pod(&name, false, &[&pod]));
        pods.push(agent_pod(&name, true, &[&host]));
    }
    (nodes, pods)
}
