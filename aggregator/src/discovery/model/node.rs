//! What the model reads from a Node: its addresses, whether its outage is planned, and its Ready
//! condition as evidence.
//!
//! Why planned and unplanned are kept apart: a node being emptied on purpose (cordoned, drained,
//! picked by an autoscaler or by Karpenter, being deleted) is expected to stop answering, so its
//! edges are not alarms. A node whose Ready condition turned `False` or `Unknown` without any of
//! those is exactly what a network partition looks like from the API server (the kubelet's
//! heartbeats stop arriving after ~40 s), so it must keep alarming; its Ready condition is only
//! carried as evidence beside its edges.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

use super::ModelWarning;

/// Taints that mean "this node is being emptied on purpose", even before it is cordoned:
/// `kubectl drain`'s, the cluster autoscaler's two, and Karpenter's (current and older key).
pub const DRAIN_TAINTS: &[&str] = &[
    "node.kubernetes.io/unschedulable",
    "ToBeDeletedByClusterAutoscaler",
    "DeletionCandidateOfClusterAutoscaler",
    "karpenter.sh/disrupted",
    "karpenter.sh/disruption",
];

/// Which `status.addresses` type is a node's host address (`--host-address-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum HostAddressType {
    /// The node's `InternalIP` addresses (what nodes use to reach each other in-cluster).
    #[default]
    #[value(name = "InternalIP")]
    InternalIp,
    /// The node's `ExternalIP` addresses (clusters whose nodes talk over public addresses).
    #[value(name = "ExternalIP")]
    ExternalIp,
}

impl HostAddressType {
    /// The `status.addresses[].type` value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InternalIp => "InternalIP",
            Self::ExternalIp => "ExternalIP",
        }
    }
}

impl std::fmt::Display for HostAddressType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The node's `Ready` condition, as the API server last recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadyCondition {
    /// `True`, `False`, `Unknown`; `None` when the node has no Ready condition (yet).
    pub status: Option<String>,
    /// `lastTransitionTime`, as the API server wrote it (RFC 3339).
    pub since: Option<String>,
    /// The machine-readable `reason` (e.g. `NodeStatusUnknown`, `KubeletNotReady`).
    pub reason: Option<String>,
}

impl ReadyCondition {
    /// The condition is `True`.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.status.as_deref() == Some("True")
    }

    /// One line for readers when the node is not Ready (`None` when it is), e.g.
    /// `Unknown since 2026-01-02T03:04:05Z (NodeStatusUnknown)`.
    #[must_use]
    pub fn evidence(&self) -> Option<String> {
        if self.is_ready() {
            return None;
        }
        let mut s = match &self.status {
            Some(st) => st.clone(),
            None => return Some("no Ready condition".into()),
        };
        if let Some(t) = &self.since {
            s.push_str(" since ");
            s.push_str(t);
        }
        if let Some(r) = &self.reason {
            s.push_str(" (");
            s.push_str(r);
            s.push(')');
        }
        Some(s)
    }
}

/// What the model knows about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: Arc<str>,
    /// `InternalIP` addresses, both families, in the order the kubelet reported them.
    pub internal_ips: Vec<IpAddr>,
    /// `ExternalIP` addresses, both families, in the order the kubelet reported them.
    pub external_ips: Vec<IpAddr>,
    /// Pod CIDRs (`spec.podCIDRs`, or `spec.podCIDR` on old clusters); invalid entries dropped.
    pub pod_cidrs: Vec<IpNet>,
    /// The `Ready` condition: evidence shown beside the node's edges, never a reason to silence them.
    pub ready: ReadyCondition,
    /// Cordoned (`spec.unschedulable`) or carrying one of [`DRAIN_TAINTS`].
    pub draining: bool,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// The `topology.kubernetes.io/zone` label (or the deprecated
    /// `failure-domain.beta.kubernetes.io/zone`), for the diagnosis to name a zone cut off.
    pub zone: Option<Arc<str>>,
}

impl NodeInfo {
    /// Failures of edges towards this node are expected: it is being emptied or deleted on
    /// purpose. A node that is merely NotReady is not expected down (that is what a partition
    /// looks like).
    #[must_use]
    pub fn expected_down(&self) -> bool {
        self.draining || self.deleting
    }

    /// The addresses of `kind`, in status order.
    #[must_use]
    pub fn addresses(&self, kind: HostAddressType) -> &[IpAddr] {
        match kind {
            HostAddressType::InternalIp => &self.internal_ips,
            HostAddressType::ExternalIp => &self.external_ips,
        }
    }
}

/// The first address of each family (one target per node, network and family); the graph's rule.
pub use crate::graph::first_per_family;

pub(super) fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Labels naming a node's zone, the current one first.
pub(super) const ZONE_LABELS: [&str; 2] = [
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
];

/// The node's zone from [`ZONE_LABELS`] (an empty value counts as none).
fn zone_label(node: &Node) -> Option<Arc<str>> {
    let labels = node.metadata.labels.as_ref()?;
    ZONE_LABELS
        .iter()
        .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()))
        .map(|v| Arc::from(truncate(v)))
}

/// Reads the model's view of a Node. `None` (with a warning) when it has no name.
pub fn node_info(node: &Node, warnings: &mut Vec<ModelWarning>) -> Option<NodeInfo> {
    let Some(name) = node.metadata.name.as_deref().filter(|n| !n.is_empty()) else {
        warnings.push(ModelWarning::Unnamed { kind: "Node" });
        return None;
    };
    let object = || format!("node/{name}");
    let mut internal_ips = Vec::new();
    let mut external_ips = Vec::new();
    let status = node.status.as_ref();
    for a in status
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
    {
        let (list, field) = match a.type_.as_str() {
            "InternalIP" => (&mut internal_ips, "status.addresses[InternalIP]"),
            "ExternalIP" => (&mut external_ips, "status.addresses[ExternalIP]"),
            _ => continue,
        };
        match a.address.parse::<IpAddr>() {
            Ok(ip) if !list.contains(&ip) => list.push(ip),
            Ok(_) => {}
            Err(_) => warnings.push(ModelWarning::BadAddress {
                object: object(),
                field,
                value: truncate(&a.address),
            }),
        }
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
        .find(|c| c.type_ == "Ready")
        .map(|c| ReadyCondition {
            status: Some(truncate(&c.status)),
            since: c.last_transition_time.as_ref().map(|t| t.0.to_string()),
            reason: c.reason.as_deref().filter(|r| !r.is_empty()).map(truncate),
        })
        .unwrap_or_default();
    let tainted = spec
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .any(|t| DRAIN_TAINTS.contains(&t.key.as_str()));
    let draining = spec.and_then(|s| s.unschedulable).unwrap_or(false) || tainted;
    Some(NodeInfo {
        name: name.into(),
        internal_ips,
        external_ips,
        pod_cidrs,
        ready,
        draining,
        deleting: node.metadata.deletion_timestamp.is_some(),
        zone: zone_label(node),
    })
}
