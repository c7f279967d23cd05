//! What an assignment may make this agent do, checked before the engine sees it.
//!
//! Why on the agent: the agent holds CAP_NET_RAW on every node, and whoever reaches its session
//! (a forged Hello in full-mesh mode, a compromised aggregator) decides what it probes. So every
//! assignment is checked as a whole against bounds the node's operator set: targets only unicast
//! addresses inside `--allow-cidr` (private ranges by default, plus the agent's own addresses),
//! at most `--max-targets` of them at no more than `--max-pps` probes per second, and settings the
//! engine can run without running out of memory. Unspecified, loopback, link-local, multicast,
//! broadcast and IPv4-mapped addresses are refused even inside a broad allowed network; only an
//! allowed network that lies entirely inside such a block (`--allow-cidr 127.0.0.0/8`) names them.
//! An assignment that fails is refused whole and the last good one keeps running.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use echomesh_proto::v1;
use ipnet::IpNet;

use crate::prober::{ProbeSettings, TargetSpec};

/// The networks probed when `--allow-cidr` is not given: RFC 1918, shared address space
/// (RFC 6598, used by some CNIs) and IPv6 unique local addresses.
pub const DEFAULT_ALLOW: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// Blocks whose addresses are never probes' business unless an allowed network lies inside them.
const SPECIAL: [(&str, &str); 10] = [
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
    ("::ffff:0:0/96", "IPv4-mapped"),
];

/// Longest probe timeout accepted: the in-flight table grows with timeout × rate.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest report interval accepted: longer windows keep every edge stale on the aggregator.
pub const MAX_REPORT_INTERVAL: Duration = Duration::from_secs(600);
/// Most consecutive losses before an alert.
pub const MAX_DOWN_AFTER: u32 = 10_000;

/// The bounds flags of `echomesh-agent run`.
#[derive(Debug, Clone, clap::Args)]
pub struct GuardArgs {
    /// Networks this agent may probe (repeat or comma-separate), replacing the default
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7; the agent's own
    /// addresses are always allowed. Loopback, link-local, multicast, unspecified and broadcast
    /// addresses need a network inside them, e.g. `--allow-cidr 127.0.0.0/8`.
    #[arg(
        long = "allow-cidr",
        env = "ECHOMESH_ALLOW_CIDR",
        value_delimiter = ',',
        value_name = "CIDR",
        value_parser = parse_cidr
    )]
    pub allow_cidrs: Vec<IpNet>,
    /// Most targets in one assignment; a larger one is refused.
    #[arg(long, env = "ECHOMESH_MAX_TARGETS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_targets: u32,
    /// Most probes per second an assignment may ask for (targets / probe interval).
    #[arg(long, env = "ECHOMESH_MAX_PPS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pps: u32,
}

impl Default for GuardArgs {
    fn default() -> Self {
        Self {
            allow_cidrs: Vec::new(),
            max_targets: 10_000,
            max_pps: 20_000,
        }
    }
}

impl GuardArgs {
    /// The defaults with extra allowed networks (tests on loopback use `127.0.0.0/8`).
    #[must_use]
    pub fn allowing(cidrs: &[&str]) -> Self {
        Self {
            allow_cidrs: cidrs
                .iter()
                .map(|c| parse_cidr(c).expect("a valid CIDR"))
                .collect(),
            ..Self::default()
        }
    }
}

/// Parses `--allow-cidr`: a network (`10.0.0.0/8`) or one address (`10.0.0.1` = `/32`).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.trim().parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.trim()
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not a network (like 10.0.0.0/8) or an address"))
}

/// Why an assignment was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// More targets than `--max-targets`.
    #[error("{got} targets exceed --max-targets {max}")]
    TooManyTargets {
        /// Targets in the assignment.
        got: usize,
        /// The bound.
        max: u32,
    },
    /// More probes per second than `--max-pps`.
    #[error("{targets} targets every {interval_ms} ms is {pps} probes/s, above --max-pps {max}")]
    TooFast {
        /// Targets.
        targets: usize,
        /// Probe interval.
        interval_ms: u32,
        /// What it would send.
        pps: u64,
        /// The bound.
        max: u32,
    },
    /// A target address that does not parse.
    #[error("target {id:016x}: {address:?} is not an IP address")]
    BadAddress {
        /// Target id.
        id: u64,
        /// The address as sent (truncated).
        address: String,
    },
    /// An address in a special block not explicitly allowed.
    #[error(
        "target {addr} is a {kind} address; only unicast addresses are probed unless --allow-cidr names its block"
    )]
    NotUnicast {
        /// The address.
        addr: IpAddr,
        /// Which block.
        kind: &'static str,
    },
    /// An address outside every allowed network.
    #[error("target {addr} is outside --allow-cidr ({allowed})")]
    NotAllowed {
        /// The address.
        addr: IpAddr,
        /// The allowed networks, as text.
        allowed: String,
    },
    /// The same target id twice.
    #[error("target id {0:016x} appears twice")]
    DuplicateId(u64),
    /// Settings out of range.
    #[error("{0}")]
    Settings(String),
}

/// The checker built from the flags and this agent's own addresses.
#[derive(Debug, Clone)]
pub struct Guard {
    allowed: Vec<IpNet>,
    special: Vec<(IpNet, &'static str)>,
    max_targets: u32,
    max_pps: u32,
}

impl Guard {
    /// A guard from `--allow-cidr`, `--max-targets`, `--max-pps` and `--address`.
    #[must_use]
    pub fn new(args: &GuardArgs, own: &[IpAddr]) -> Self {
        let mut allowed: Vec<IpNet> = if args.allow_cidrs.is_empty() {
            DEFAULT_ALLOW
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect()
        } else {
            args.allow_cidrs.clone()
        };
        allowed.extend(own.iter().map(|&a| IpNet::from(a)));
        Self {
            allowed,
            special: SPECIAL
                .iter()
                .filter_map(|(c, k)| Some((c.parse().ok()?, *k)))
                .collect(),
            max_targets: args.max_targets,
            max_pps: args.max_pps,
        }
    }

    /// Checks one address: inside an allowed network, and a special one only when an allowed
    /// network containing it lies inside its special block.
    pub fn check_addr(&self, addr: IpAddr) -> Result<(), Rejection> {
        let containing: Vec<&IpNet> = self.allowed.iter().filter(|n| n.contains(&addr)).collect();
        if let Some((block, kind)) = self.special.iter().find(|(b, _)| b.contains(&addr)) {
            if containing.iter().any(|n| block.contains(*n)) {
                return Ok(());
            }
            return Err(Rejection::NotUnicast { addr, kind });
        }
        if let IpAddr::V4(v4) = addr
            && v4.is_broadcast()
        {
            return Err(Rejection::NotUnicast {
                addr,
                kind: "broadcast",
            });
        }
        if containing.is_empty() {
            return Err(Rejection::NotAllowed {
                addr,
                allowed: self.allowed_text(),
            });
        }
        Ok(())
    }

    fn allowed_text(&self) -> String {
        let mut s: Vec<String> = self
            .allowed
            .iter()
            .take(8)
            .map(ToString::to_string)
            .collect();
        if self.allowed.len() > 8 {
            s.push(format!("and {} more", self.allowed.len() - 8));
        }
        s.join(", ")
    }

    /// The engine's settings and targets for `a`, or why it is refused as a whole.
    pub fn check(&self, a: &v1::Assignment) -> Result<(ProbeSettings, Vec<TargetSpec>), Rejection> {
        let n = a.targets.len();
        if n > self.max_targets as usize {
            return Err(Rejection::TooManyTargets {
                got: n,
                max: self.max_targets,
            });
        }
        let settings = settings(a)?;
        let interval_ms = a.probe_interval_ms;
        let pps = (n as u64 * 1000).div_ceil(u64::from(interval_ms.max(1)));
        if pps > u64::from(self.max_pps) {
            return Err(Rejection::TooFast {
                targets: n,
                interval_ms,
                pps,
                max: self.max_pps,
            });
        }
        let mut ids = HashSet::with_capacity(n);
        let mut targets = Vec::with_capacity(n);
        for t in &a.targets {
            let addr: IpAddr = t.address.parse().map_err(|_| Rejection::BadAddress {
                id: t.id,
                address: t.address.chars().take(64).collect(),
            })?;
            self.check_addr(addr)?;
            if !ids.insert(t.id) {
                return Err(Rejection::DuplicateId(t.id));
            }
            targets.push(TargetSpec { id: t.id, addr });
        }
        Ok((settings, targets))
    }
}

/// Longest reason sent to the aggregator, in bytes.
pub const MAX_REASON: usize = 512;

/// The message telling the aggregator that the assignment of `generation` was refused, and why.
#[must_use]
pub fn rejected_msg(generation: u64, why: &str) -> v1::AgentMessage {
    let mut reason = String::with_capacity(why.len().min(MAX_REASON));
    for c in why.chars() {
        if reason.len() + c.len_utf8() > MAX_REASON {
            break;
        }
        reason.push(c);
    }
    v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::AssignmentRejected(
            v1::AssignmentRejected { generation, reason },
        )),
    }
}

/// The assignment's probe settings, each within its range (zero is refused, not defaulted:
/// an aggregator always sends every setting).
fn settings(a: &v1::Assignment) -> Result<ProbeSettings, Rejection> {
    let bad = |m: String| Err(Rejection::Settings(m));
    if a.probe_interval_ms == 0 {
        return bad("probe interval 0 ms: it must be at least 1 ms".into());
    }
    if a.timeout_ms == 0 {
        return bad("probe timeout 0 ms: it must be at least 1 ms".into());
    }
    let timeout = Duration::from_millis(u64::from(a.timeout_ms));
    if timeout > MAX_TIMEOUT {
        return bad(format!(
            "probe timeout {} ms is above {} s",
            a.timeout_ms,
            MAX_TIMEOUT.as_secs()
        ));
    }
    let report = Duration::from_millis(u64::from(a.report_interval_ms));
    if a.report_interval_ms == 0 || report > MAX_REPORT_INTERVAL {
        return bad(format!(
            "report interval {} ms is outside 1 ms..={} s",
            a.report_interval_ms,
            MAX_REPORT_INTERVAL.as_secs()
        ));
    }
    if !(1..=MAX_DOWN_AFTER).contains(&a.down_after) {
        return bad(format!(
            "down_after {} is outside 1..={MAX_DOWN_AFTER}",
            a.down_after
        ));
    }
    let Some(&payload) = a.payload_sizes.first() else {
        return bad("no payload size".into());
    };
    let s = ProbeSettings {
        interval: Duration::from_millis(u64::from(a.probe_interval_ms)),
        timeout,
        payload_size: payload as usize,
        alt_payload_size: a.payload_sizes.get(1).map_or(0, |&p| p as usize),
        down_after: a.down_after,
    };
    s.validate()
        .map_err(|e| Rejection::Settings(e.to_string()))?;
    Ok(s)
}

#[cfg(test)]
mod tests;
