//! Translation between the engine and the protocol: assignments become engine input, engine
//! windows and flips become reports and alerts.
//!
//! The engine knows targets by id only; the aggregator also wants each target's slot (its index
//! in the assignment) and the assignment's generation, so every conversion goes through the
//! assignment in force ([`InForce`]). Targets that are no longer assigned are not reported.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use echomesh_proto::v1::{self, AgentMessage, agent_message};

use super::args::{MAX_ADDRESSES, RunArgs, RunError};
use crate::icmp::IcmpErrorKind;
use crate::prober::stats::{IcmpErrorCounts, SendError};
use crate::prober::{ProbeSettings, TargetFlip, TargetSpec, TargetWindow};

/// Report intervals below this are raised to it: a faster one only costs bandwidth.
pub const MIN_REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// The assignment in force: its generation, each target's slot, and the report interval.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InForce {
    /// Generation of the assignment.
    pub generation: u64,
    slots: HashMap<u64, u32>,
    /// How often to report.
    pub report_interval: Duration,
}

impl InForce {
    /// What `a` puts in force.
    #[must_use]
    pub fn new(a: &v1::Assignment) -> Self {
        let ids: Vec<u64> = a.targets.iter().map(|t| t.id).collect();
        let interval =
            Duration::from_millis(u64::from(a.report_interval_ms)).max(MIN_REPORT_INTERVAL);
        Self::for_ids(a.generation, &ids, interval)
    }

    /// An assignment of `ids`, in slot order.
    #[must_use]
    pub fn for_ids(generation: u64, ids: &[u64], report_interval: Duration) -> Self {
        Self {
            generation,
            slots: ids
                .iter()
                .enumerate()
                .map(|(i, &id)| (id, u32::try_from(i).unwrap_or(u32::MAX)))
                .collect(),
            report_interval,
        }
    }

    /// The slot of target `id`, if assigned.
    #[must_use]
    pub fn slot(&self, id: u64) -> Option<u32> {
        self.slots.get(&id).copied()
    }

    /// Number of assigned targets.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing is assigned.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// The Hello that opens every session; refuses an address list the aggregator would. `started`
/// is when this process started: of two agents of one node and network, the later one keeps the
/// session.
pub fn hello(args: &RunArgs, boot_id: u64, started: SystemTime) -> Result<v1::Hello, RunError> {
    if args.addresses.is_empty() || args.addresses.len() > MAX_ADDRESSES {
        return Err(RunError::Addresses(args.addresses.len()));
    }
    Ok(v1::Hello {
        node: args.node.clone(),
        pod: args.pod.clone(),
        network: args.network as i32,
        addresses: args.addresses.iter().map(ToString::to_string).collect(),
        version: env!("CARGO_PKG_VERSION").into(),
        boot_id,
        started_at_unix_ms: started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        zone: args.zone.clone(),
    })
}

/// Converts an engine window to the wire form; `None` for a target no longer assigned.
#[must_use]
pub fn target_stats(w: &TargetWindow, cur: &InForce) -> Option<v1::TargetStats> {
    let slot = cur.slot(w.id)?;
    let s = &w.stats;
    let sizes = if s.sizes[1].payload != 0 {
        s.sizes
            .iter()
            .filter(|c| c.payload != 0)
            .map(|c| v1::PayloadSizeStats {
                payload_size: c.payload,
                sent: c.sent,
                received: c.received,
                lost: c.lost,
                too_big: c.too_big,
            })
            .collect()
    } else {
        Vec::new()
    };
    Some(v1::TargetStats {
        target_id: w.id,
        slot,
        sent: s.sent,
        received: s.received,
        lost: s.lost,
        duplicates: s.duplicates,
        reordered: s.reordered,
        late: s.late,
        errors: Some(icmp_errors(&s.errors)),
        rtt: Some(v1::Histogram::from(&s.rtt)),
        send_errors: s.send_errors,
        last_send_errno: match s.last_send_error {
            None => 0,
            Some(SendError::Os(errno)) => errno,
            Some(SendError::NoSocket) => -1,
            Some(SendError::Unreported) => -2,
        },
        sizes,
    })
}

/// Every error kind the engine tells apart, each in its own field; the four classic totals
/// (`dest_unreachable` = the six unreachable kinds) stay what older readers sum.
#[must_use]
pub fn icmp_errors(e: &IcmpErrorCounts) -> v1::IcmpErrors {
    v1::IcmpErrors {
        dest_unreachable: e.net_unreachable
            + e.host_unreachable
            + e.protocol_unreachable
            + e.port_unreachable
            + e.frag_needed
            + e.admin_prohibited,
        time_exceeded: e.time_exceeded,
        parameter_problem: e.parameter_problem,
        other: e.other,
        net_unreachable: e.net_unreachable,
        host_unreachable: e.host_unreachable,
        protocol_unreachable: e.protocol_unreachable,
        port_unreachable: e.port_unreachable,
        frag_needed: e.frag_needed,
        admin_prohibited: e.admin_prohibited,
        last_mtu: e.last_mtu.unwrap_or(0),
        last_kind: e
            .last_kind
            .map_or(v1::IcmpErrorKind::Unspecified, error_kind) as i32,
    }
}

/// The protocol's name for an engine error kind.
#[must_use]
pub fn error_kind(k: IcmpErrorKind) -> v1::IcmpErrorKind {
    match k {
        IcmpErrorKind::NetUnreachable => v1::IcmpErrorKind::NetUnreachable,
        IcmpErrorKind::HostUnreachable => v1::IcmpErrorKind::HostUnreachable,
        IcmpErrorKind::ProtocolUnreachable => v1::IcmpErrorKind::ProtocolUnreachable,
        IcmpErrorKind::PortUnreachable => v1::IcmpErrorKind::PortUnreachable,
        IcmpErrorKind::FragmentationNeeded { .. } => v1::IcmpErrorKind::FragNeeded,
        IcmpErrorKind::AdminProhibited => v1::IcmpErrorKind::AdminProhibited,
        IcmpErrorKind::TimeExceeded => v1::IcmpErrorKind::TimeExceeded,
        IcmpErrorKind::ParameterProblem => v1::IcmpErrorKind::ParameterProblem,
        IcmpErrorKind::Other { .. } => v1::IcmpErrorKind::Other,
    }
}

/// Probe settings and targets from an assignment (unparseable addresses are skipped, logged).
#[must_use]
pub fn engine_input(a: &v1::Assignment) -> (ProbeSettings, Vec<TargetSpec>) {
    let ms = |v: u32, d: u64| Duration::from_millis(if v == 0 { d } else { u64::from(v) });
    let settings = ProbeSettings {
        interval: ms(a.probe_interval_ms, 1000),
        timeout: ms(a.timeout_ms, 1000),
        payload_size: a.payload_sizes.first().map_or(56, |&p| p as usize),
        alt_payload_size: a.payload_sizes.get(1).map_or(0, |&p| p as usize),
        down_after: if a.down_after == 0 { 6 } else { a.down_after },
    };
    let targets = a
        .targets
        .iter()
        .filter_map(|t| match t.address.parse() {
            Ok(addr) => Some(TargetSpec { id: t.id, addr }),
            Err(_) => {
                tracing::warn!(address = %t.address, "assignment target is not an IP address; skipped");
                None
            }
        })
        .collect();
    (settings, targets)
}

/// The report of one window `[start, end)` of the assignment in force.
#[must_use]
pub fn report(
    seq: u64,
    windows: &[TargetWindow],
    cur: &InForce,
    start: SystemTime,
    end: SystemTime,
) -> v1::Report {
    v1::Report {
        seq,
        generation: cur.generation,
        window_start_unix_ms: unix_ms(start),
        window_ms: end
            .duration_since(start)
            .map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
        targets: windows
            .iter()
            .filter_map(|w| target_stats(w, cur))
            .collect(),
    }
}

/// The alert for a reachability flip; `None` for a target no longer assigned.
#[must_use]
pub fn alert(f: &TargetFlip, cur: &InForce, at: SystemTime) -> Option<AgentMessage> {
    let slot = cur.slot(f.id)?;
    Some(AgentMessage {
        msg: Some(agent_message::Msg::Alert(v1::Alert {
            target_id: f.id,
            slot,
            generation: cur.generation,
            reachable: f.reachable,
            consecutive_losses: f.consecutive_losses,
            at_unix_ms: unix_ms(at),
        })),
    })
}

/// A report as a stream message.
#[must_use]
pub fn report_msg(r: &v1::Report) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Report(r.clone())),
    }
}

/// A hello as a stream message.
#[must_use]
pub fn hello_msg(h: v1::Hello) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(h)),
    }
}

/// Milliseconds since the Unix epoch (0 before it).
#[must_use]
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
