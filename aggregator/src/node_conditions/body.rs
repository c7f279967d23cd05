//! What is written: the Node status condition (a strategic merge patch) and the Event, with every
//! string from the graph checked or bounded.
//!
//! Why a strategic merge patch: Node `status.conditions` merge by `type`, so the patch carries
//! only the `EchomeshNetworkProblem` condition and the kubelet's and other controllers'
//! conditions are left exactly as they are (nothing is read, replaced or deleted). Why the
//! checks: node names reach the graph from agents' Hellos, so a name is written only when it is a
//! valid Node name (it also becomes part of the request path), and messages are stripped of
//! control characters and cut to a fixed length.

use crate::diagnose::{Culprit, Kind};

/// The condition type echomesh owns on Nodes.
pub const CONDITION_TYPE: &str = "EchomeshNetworkProblem";
/// The reason of a condition that went back to False.
pub const HEALTHY_REASON: &str = "NetworkHealthy";
/// Longest message written (the API server allows more; a condition line should stay readable).
pub const MAX_MESSAGE: usize = 1024;
/// The reporting component named in Events.
pub const COMPONENT: &str = "echomesh-aggregator";

/// Why a node is blamed: the reason written and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blame {
    /// `NodeUnreachable`, `PodNetworkBroken` or `HostNetworkBroken`.
    pub reason: &'static str,
    /// The diagnosis's line for the culprit, bounded.
    pub message: String,
}

impl Blame {
    /// The blame for `c` when it is about one node (node, pod network, host network).
    #[must_use]
    pub fn of(c: &Culprit, now_unix_ms: u64) -> Option<Self> {
        let reason = match c.kind {
            Kind::Node => "NodeUnreachable",
            Kind::PodNetwork => "PodNetworkBroken",
            Kind::HostNetwork => "HostNetworkBroken",
            _ => return None,
        };
        let message = bounded(&format!(
            "echomesh diagnosis: {} (confidence {:.0} %)",
            c.describe(now_unix_ms),
            c.confidence * 100.0
        ));
        Some(Self { reason, message })
    }
}

/// Whether `name` is a valid Node name (a DNS-1123 subdomain: at most 253 characters of
/// `a-z`, `0-9`, `-` and `.`, each dot-separated label starting and ending alphanumeric).
#[must_use]
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `s` without control characters, cut to [`MAX_MESSAGE`] bytes at a character boundary.
#[must_use]
pub fn bounded(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_MESSAGE));
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_MESSAGE {
            break;
        }
        out.push(c);
    }
    out
}

/// The strategic merge patch setting the condition: `Some(blame)` sets it True, `None` False.
#[must_use]
pub fn condition_patch(blame: Option<&Blame>, now_rfc3339: &str) -> serde_json::Value {
    let (status, reason, message) = match blame {
        Some(b) => ("True", b.reason, b.message.as_str()),
        None => (
            "False",
            HEALTHY_REASON,
            "echomesh diagnosis: the node is no longer blamed",
        ),
    };
    serde_json::json!({
        "status": {
            "conditions": [{
                "type": CONDITION_TYPE,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now_rfc3339,
                "lastTransitionTime": now_rfc3339,
            }]
        }
    })
}

/// A core/v1 Event about Node `node`: Warning with the blame, or Normal when healed. Events
/// about cluster-scoped objects live in `namespace` `default`, where `kubectl describe node`
/// finds them.
#[must_use]
pub fn event(node: &str, blame: Option<&Blame>, now_rfc3339: &str) -> serde_json::Value {
    let (type_, reason, message) = match blame {
        Some(b) => ("Warning", b.reason, b.message.as_str()),
        None => (
            "Normal",
            HEALTHY_REASON,
            "echomesh diagnosis: the node is no longer blamed",
        ),
    };
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": format!("{node}.echomesh-"),
            "namespace": "default",
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Node",
            "name": node,
            "uid": node,
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now_rfc3339,
        "lastTimestamp": now_rfc3339,
        "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_must_be_dns_subdomains() {
        for ok in ["a", "node-1", "ip-10-0-0-1.ec2.internal", &"a".repeat(63)] {
            assert!(valid_node_name(ok), "{ok}");
        }
        for bad in [
            "",
            "A",
            "-a",
            "a-",
            "a..b",
            "a/b",
            "a b",
            "a\nb",
            "../status",
            "é",
            &"a".repeat(64),
            &["a"; 200].join("."),
        ] {
            assert!(!valid_node_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn messages_lose_control_characters_and_are_cut() {
        assert_eq!(bounded("a\nb\u{1b}[31m"), "a b [31m");
        let long = "é".repeat(MAX_MESSAGE);
        let b = bounded(&long);
        assert!(
            b.len() <= MAX_MESSAGE && b.len() >= MAX_MESSAGE - 1,
            "{}",
            b.len()
        );
        assert!(b.chars().all(|c| c == 'é'));
    }

    #[test]
    fn healed_condition_is_false_with_its_reason() {
        let p = condition_patch(None, "2026-01-01T00:00:00Z");
        let c = &p["status"]["conditions"][0];
        assert_eq!(c["type"], CONDITION_TYPE);
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], HEALTHY_REASON);
    }
}
