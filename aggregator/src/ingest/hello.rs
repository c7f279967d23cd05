//! What a valid Hello is, and how it becomes the graph's identity of an agent.
//!
//! Why validated before anything else: the Hello names the agent for the whole session, so a bad
//! name or address must be refused with a reason before it reaches the graph.

use std::net::IpAddr;

use echomesh_proto::v1::{self, Network};

use crate::graph::{AgentInfo, AgentKey};

/// Why a Hello was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HelloError {
    /// Node name missing or unusable.
    #[error("hello: node name must be 1..=253 printable characters, got {0:?}")]
    BadNode(String),
    /// Network not POD or HOST.
    #[error("hello: network must be NETWORK_POD or NETWORK_HOST, got {0}")]
    BadNetwork(i32),
    /// An address that does not parse.
    #[error("hello: {0:?} is not an IP address")]
    BadAddress(String),
    /// An address peers must not be made to probe.
    #[error("hello: {addr} is a {kind} address; agents announce unicast addresses peers can probe")]
    NotUnicast {
        /// The address.
        addr: IpAddr,
        /// What it is.
        kind: &'static str,
    },
    /// A version or pod name with control characters or too long.
    #[error("hello: {field} must be at most {max} printable characters, got {got:?}")]
    NotPrintable {
        /// Which field.
        field: &'static str,
        /// Its bound.
        max: usize,
        /// What came (escaped, cut).
        got: String,
    },
    /// No addresses, or too many.
    #[error("hello: an agent announces 1..=16 addresses, got {0}")]
    AddressCount(usize),
    /// A start time ahead of the aggregator's clock by more than [`MAX_START_AHEAD_MS`].
    #[error(
        "hello: started_at_unix_ms is {ahead_s} s ahead of the aggregator's clock (at most {} s \
         is accepted): a start in the future would make this session outrank every real agent \
         of the node",
        MAX_START_AHEAD_MS / 1000
    )]
    StartInFuture {
        /// Seconds ahead.
        ahead_s: u64,
    },
}

/// How far an agent's start time may lie ahead of the aggregator's clock (node clock skew). The
/// later start wins a claim on a node and network, so without a bound a client could claim a
/// start in the far future and keep the real agent standing by.
pub const MAX_START_AHEAD_MS: u64 = 5 * 60 * 1000;

/// The most addresses a Hello may announce.
pub const MAX_ADDRESSES: usize = 16;

/// Checks a Hello against the wall clock and turns it into the graph's types.
pub fn validate_hello(h: &v1::Hello) -> Result<(AgentKey, AgentInfo), HelloError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    validate_hello_at(h, now_ms)
}

/// [`validate_hello`] at the given wall-clock time (unix ms).
pub fn validate_hello_at(h: &v1::Hello, now_ms: u64) -> Result<(AgentKey, AgentInfo), HelloError> {
    let ahead = h.started_at_unix_ms.saturating_sub(now_ms);
    if ahead > MAX_START_AHEAD_MS {
        return Err(HelloError::StartInFuture {
            ahead_s: ahead / 1000,
        });
    }
    if h.node.is_empty() || h.node.len() > 253 || h.node.chars().any(char::is_control) {
        return Err(HelloError::BadNode(h.node.chars().take(64).collect()));
    }
    let network = match Network::try_from(h.network) {
        Ok(n @ (Network::Pod | Network::Host)) => n,
        _ => return Err(HelloError::BadNetwork(h.network)),
    };
    if h.addresses.is_empty() || h.addresses.len() > MAX_ADDRESSES {
        return Err(HelloError::AddressCount(h.addresses.len()));
    }
    for (field, v, max) in [
        ("version", &h.version, 64),
        ("pod", &h.pod, 253),
        ("zone", &h.zone, 63),
    ] {
        if !super::text::printable(v, max) {
            return Err(HelloError::NotPrintable {
                field,
                max,
                got: super::text::escaped(v, 64),
            });
        }
    }
    let mut addresses = Vec::with_capacity(h.addresses.len());
    for a in &h.addresses {
        let ip: IpAddr = a
            .parse()
            .map_err(|_| HelloError::BadAddress(a.chars().take(64).collect()))?;
        if let Some(kind) = not_unicast(ip) {
            return Err(HelloError::NotUnicast { addr: ip, kind });
        }
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    Ok((
        AgentKey {
            node: h.node.as_str().into(),
            network,
        },
        AgentInfo {
            pod: h.pod.chars().take(253).collect(),
            addresses,
            version: h.version.chars().take(64).collect(),
            boot_id: h.boot_id,
            connected: true,
            disconnected_at: None,
        },
    ))
}

/// What kind of non-unicast address `ip` is, if it is one. In full-mesh mode every announced
/// address becomes every agent's target, so these would aim the whole cluster at a multicast
/// group, the broadcast address or nowhere. Loopback is allowed: the single-host lab and tests
/// run agents on 127.0.0.x (the agents' own `--allow-cidr` still decides whether they probe it).
#[must_use]
pub fn not_unicast(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.octets()[0] == 0 => Some("unspecified"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("multicast"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local"),
        IpAddr::V4(v4) if v4.octets()[0] >= 240 => Some("reserved"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("unspecified"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("multicast"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("link-local"),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Some("IPv4-mapped"),
        _ => None,
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(node: &str, network: Network, addrs: &[&str]) -> v1::Hello {
        v1::Hello {
            node: node.into(),
            network: network as i32,
            addresses: addrs.iter().map(|s| (*s).to_string()).collect(),
            ..v1::Hello::default()
        }
    }

    #[test]
    fn hello_validation_messages() {
        assert_eq!(
            validate_hello(&hello("", Network::Pod, &["10.0.0.1"])).map(|_| ()),
            Err(HelloError::BadNode(String::new()))
        );
        let e = validate_hello(&hello("n", Network::Unspecified, &["10.0.0.1"]))
            .map(|_| ())
            .expect_err("bad network");
        assert_eq!(
            e.to_string(),
            "hello: network must be NETWORK_POD or NETWORK_HOST, got 0"
        );
        let e = validate_hello(&hello("n", Network::Pod, &["10.0.0.999"]))
            .map(|_| ())
            .expect_err("bad address");
        assert_eq!(e.to_string(), "hello: \"10.0.0.999\" is not an IP address");
        assert_eq!(
            validate_hello(&hello("n", Network::Pod, &[])).map(|_| ()),
            Err(HelloError::AddressCount(0))
        );
        let (k, i) = validate_hello(&hello("n", Network::Host, &["::1", "::1"])).expect("ok");
        assert_eq!(k.network, Network::Host);
        assert_eq!(i.addresses.len(), 1);
    }

    #[test]
    fn a_zone_is_a_short_printable_name() {
        let mut h = hello("n", Network::Pod, &["10.0.0.1"]);
        h.zone = "zone-a".into();
        assert!(validate_hello(&h).is_ok());
        h.zone = "zone\n-a".into();
        assert_eq!(
            validate_hello(&h).map(|_| ()).map_err(|e| e.to_string()),
            Err("hello: zone must be at most 63 printable characters, got \"zone\\\\n-a\"".into())
        );
        h.zone = "z".repeat(64);
        assert!(matches!(
            validate_hello(&h),
            Err(HelloError::NotPrintable { field: "zone", .. })
        ));
    }

    #[test]
    fn a_start_time_far_ahead_of_the_clock_is_refused() {
        let now = 1_800_000_000_000;
        let mut h = hello("n", Network::Pod, &["10.0.0.1"]);
        h.started_at_unix_ms = now + MAX_START_AHEAD_MS;
        assert!(
            validate_hello_at(&h, now).is_ok(),
            "clock skew within the bound"
        );
        h.started_at_unix_ms = now + 3_600_000;
        assert_eq!(
            validate_hello_at(&h, now)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(
                "hello: started_at_unix_ms is 3600 s ahead of the aggregator's clock (at most \
                 300 s is accepted): a start in the future would make this session outrank \
                 every real agent of the node"
                    .into()
            )
        );
    }
}
