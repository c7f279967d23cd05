//! Names of agents and targets as operators type them: `node`, `node/network` or
//! `node/network/address` (`node1/host`, `node2/pod/10.244.2.2`), the form every table prints.
//!
//! Why parsed here, in the query layer: the CLI, grpcurl and the JSON API send the same strings in
//! `source_node`, `target_node` and `target`, so one parser gives all of them the same names and
//! the same refusals.

use std::net::IpAddr;

use echomesh_proto::v1::Network;
use tonic::Status;

/// A parsed name: the node, its network (`Unspecified` when not named) and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// Node name.
    pub node: String,
    /// Network, `Unspecified` for both.
    pub network: Network,
    /// One address of the node in that network.
    pub addr: Option<IpAddr>,
}

/// Longest node name (a Kubernetes object name), as the Hello also enforces: every name echoed in
/// an error stays short.
const MAX_NODE_NAME: usize = 253;

impl Name {
    /// Parses `node[/network[/address]]`; `network` is the request's own network field for the
    /// same end, which must agree with the one in the name when both are given.
    ///
    /// # Errors
    /// `InvalidArgument` naming `field` and the reason.
    pub fn parse(s: &str, network: Network, field: &str) -> Result<Self, Status> {
        let shown: String = s.chars().take(128).collect();
        let mut parts = s.splitn(3, '/');
        let node = parts.next().unwrap_or_default();
        if node.is_empty() {
            return Err(Status::invalid_argument(format!(
                "{field} {shown:?}: the node name is empty (use node, node/network or node/network/address)"
            )));
        }
        if node.len() > MAX_NODE_NAME {
            return Err(Status::invalid_argument(format!(
                "{field} {shown:?}…: a node name is at most {MAX_NODE_NAME} bytes, got {}",
                node.len()
            )));
        }
        let named = match parts.next() {
            None => Network::Unspecified,
            Some(n) => n
                .parse::<Network>()
                .map_err(|e| Status::invalid_argument(format!("{field} {shown:?}: {e}")))?,
        };
        let addr = match parts.next() {
            None => None,
            Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
                Status::invalid_argument(format!(
                    "{field} {shown:?}: {:?} is not an IP address",
                    a.chars().take(64).collect::<String>()
                ))
            })?),
        };
        let network = match (named, network) {
            (Network::Unspecified, n) | (n, Network::Unspecified) => n,
            (a, b) if a == b => a,
            (a, b) => {
                return Err(Status::invalid_argument(format!(
                    "{field} {shown:?} names the {a} network but the request asks for {b}"
                )));
            }
        };
        Ok(Self {
            node: node.to_string(),
            network,
            addr,
        })
    }

    /// Whether an endpoint or agent on `node`, `network`, `addr` is what this name names.
    #[must_use]
    pub fn matches(&self, node: &str, network: Network, addr: Option<IpAddr>) -> bool {
        self.node == node
            && (self.network == Network::Unspecified || self.network == network)
            && (self.addr.is_none() || addr.is_none() || self.addr == addr)
    }

    /// The networks this name allows, pod first.
    #[must_use]
    pub fn networks(&self) -> &'static [Network] {
        match self.network {
            Network::Unspecified => &[Network::Pod, Network::Host],
            Network::Pod => &[Network::Pod],
            Network::Host => &[Network::Host],
        }
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.node)?;
        if self.network != Network::Unspecified {
            write!(f, "/{}", self.network)?;
        }
        if let Some(a) = self.addr {
            write!(f, "/{a}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_network_and_address() {
        let n = Name::parse("node2/pod/10.244.2.2", Network::Unspecified, "target").expect("ok");
        assert_eq!(n.node, "node2");
        assert_eq!(n.network, Network::Pod);
        assert_eq!(n.addr, Some("10.244.2.2".parse().expect("ip")));
        assert_eq!(n.to_string(), "node2/pod/10.244.2.2");
        let n = Name::parse("node1/host", Network::Unspecified, "source").expect("ok");
        assert_eq!(
            (n.node.as_str(), n.network, n.addr),
            ("node1", Network::Host, None)
        );
        let n = Name::parse("a/any/fd00::1", Network::Host, "x").expect("ok");
        assert_eq!(n.network, Network::Host);
        assert!(n.matches("a", Network::Host, Some("fd00::1".parse().expect("ip"))));
        assert!(!n.matches("a", Network::Pod, None));
    }

    #[test]
    fn refusals_name_the_field_and_the_reason() {
        for (s, net, msg) in [
            (
                "/pod",
                Network::Unspecified,
                "source_node \"/pod\": the node name is empty",
            ),
            (
                "a/overlay",
                Network::Unspecified,
                "unknown network \"overlay\": use pod, host or any",
            ),
            (
                "a/pod/x",
                Network::Unspecified,
                "\"x\" is not an IP address",
            ),
            (
                "a/pod",
                Network::Host,
                "names the pod network but the request asks for host",
            ),
        ] {
            let e = Name::parse(s, net, "source_node").expect_err(s);
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains(msg), "{s}: {}", e.message());
        }
    }

    #[test]
    fn an_oversized_node_name_is_refused_without_echoing_it() {
        let long = "n".repeat(100_000);
        let e = Name::parse(&long, Network::Unspecified, "source_node").expect_err("too long");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().len() < 300, "{}", e.message().len());
        assert!(
            e.message()
                .ends_with("a node name is at most 253 bytes, got 100000"),
            "{}",
            e.message()
        );
    }
}
