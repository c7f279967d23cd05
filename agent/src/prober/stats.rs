//! Per-target counters and RTT histograms, kept per report window.
//!
//! Why windows: the aggregator wants "what happened in the last N seconds" from every agent, merged
//! across agents; counters that reset each window (rather than ever-growing totals) make a replayed
//! or lost report affect only its own window. One-shot `probe` simply uses one window for the run.

use std::time::Duration;

use echomesh_proto::Histogram;

use crate::icmp::{IcmpErrorKind, Reject};

/// ICMP errors that quoted one of our probes to a target, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IcmpErrorCounts {
    /// Network unreachable / no route.
    pub net_unreachable: u64,
    /// Host (address) unreachable.
    pub host_unreachable: u64,
    /// Protocol unreachable.
    pub protocol_unreachable: u64,
    /// Port unreachable.
    pub port_unreachable: u64,
    /// Fragmentation needed / packet too big.
    pub frag_needed: u64,
    /// Administratively prohibited.
    pub admin_prohibited: u64,
    /// Time (TTL / hop limit) exceeded.
    pub time_exceeded: u64,
    /// Parameter problem.
    pub parameter_problem: u64,
    /// Any other destination-unreachable code.
    pub other: u64,
    /// Next-hop MTU from the latest fragmentation-needed error.
    pub last_mtu: Option<u32>,
    /// The latest error's kind, so a person sees what the path says now.
    pub last_kind: Option<IcmpErrorKind>,
}

impl IcmpErrorCounts {
    /// Counts one error.
    pub fn record(&mut self, kind: IcmpErrorKind) {
        self.last_kind = Some(kind);
        match kind {
            IcmpErrorKind::NetUnreachable => self.net_unreachable += 1,
            IcmpErrorKind::HostUnreachable => self.host_unreachable += 1,
            IcmpErrorKind::ProtocolUnreachable => self.protocol_unreachable += 1,
            IcmpErrorKind::PortUnreachable => self.port_unreachable += 1,
            IcmpErrorKind::FragmentationNeeded { mtu } => {
                self.frag_needed += 1;
                if mtu > 0 {
                    self.last_mtu = Some(mtu);
                }
            }
            IcmpErrorKind::AdminProhibited => self.admin_prohibited += 1,
            IcmpErrorKind::TimeExceeded => self.time_exceeded += 1,
            IcmpErrorKind::ParameterProblem => self.parameter_problem += 1,
            IcmpErrorKind::Other { .. } => self.other += 1,
        }
    }

    /// All errors together.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.net_unreachable
            + self.host_unreachable
            + self.protocol_unreachable
            + self.port_unreachable
            + self.frag_needed
            + self.admin_prohibited
            + self.time_exceeded
            + self.parameter_problem
            + self.other
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &IcmpErrorCounts) {
        self.net_unreachable += other.net_unreachable;
        self.host_unreachable += other.host_unreachable;
        self.protocol_unreachable += other.protocol_unreachable;
        self.port_unreachable += other.port_unreachable;
        self.frag_needed += other.frag_needed;
        self.admin_prohibited += other.admin_prohibited;
        self.time_exceeded += other.time_exceeded;
        self.parameter_problem += other.parameter_problem;
        self.other += other.other;
        if other.last_mtu.is_some() {
            self.last_mtu = other.last_mtu;
        }
        if other.last_kind.is_some() {
            self.last_kind = other.last_kind;
        }
    }
}

/// What happened to the probes of one target in one window.
///
/// Invariant once every probe of the window has settled: `sent == received + lost`. Duplicates,
/// late replies and ICMP errors are counted beside, never as extra receptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetStats {
    /// Probes handed to the kernel (or refused by it locally, see `send_errors`).
    pub sent: u64,
    /// Probes answered in time by a verified reply.
    pub received: u64,
    /// Probes with no reply before the timeout (including local send failures).
    pub lost: u64,
    /// Extra replies to a probe already answered.
    pub duplicates: u64,
    /// Replies that arrived after a reply to a later probe of the same target.
    pub reordered: u64,
    /// Replies that arrived after their probe had timed out (already counted as lost).
    pub late: u64,
    /// Probes the local kernel refused to send (no route, message too big, ...).
    pub send_errors: u64,
    /// Why the latest of them was refused, so a person sees the cause and not only a count.
    pub last_send_error: Option<SendError>,
    /// ICMP errors quoting our probes.
    pub errors: IcmpErrorCounts,
    /// RTTs of the received probes.
    pub rtt: Histogram,
    /// Per payload size when the settings cycle two sizes (index 0: the base size, 1: the
    /// alternate one); all zero otherwise.
    pub sizes: [SizeCounts; 2],
}

/// One payload size's probes in a window: how an MTU black hole shows (small ones answered, large
/// ones lost or refused as too big).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SizeCounts {
    /// Payload bytes after the ICMP header (0: this size was not used).
    pub payload: u32,
    /// Probes of this size sent.
    pub sent: u64,
    /// Of them answered in time.
    pub received: u64,
    /// Of them lost.
    pub lost: u64,
    /// Fragmentation-needed / packet-too-big errors and local `EMSGSIZE` refusals for this size.
    pub too_big: u64,
}

impl SizeCounts {
    fn merge(&mut self, other: &SizeCounts) {
        if other.payload != 0 {
            self.payload = other.payload;
        }
        self.sent += other.sent;
        self.received += other.received;
        self.lost += other.lost;
        self.too_big += other.too_big;
    }
}

/// Why the kernel refused to send a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The send syscall failed with this errno (`EMSGSIZE`, `ENETUNREACH`, `EACCES`, ...).
    Os(i32),
    /// No socket of the target's address family could be opened (e.g. no IPv6 here).
    NoSocket,
    /// Refused within a `sendmmsg` batch, whose caller learns only how many were sent.
    Unreported,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Os(errno) => {
                write!(f, "{}", std::io::Error::from_raw_os_error(*errno))?;
                if *errno == libc::EMSGSIZE {
                    f.write_str(
                        ": the probe is larger than the path's MTU allows (don't-fragment is set)",
                    )?;
                }
                Ok(())
            }
            Self::NoSocket => f.write_str("no raw socket for this address family"),
            Self::Unreported => f.write_str("refused within a send batch (cause not reported)"),
        }
    }
}

impl TargetStats {
    /// Percentage of settled probes that were lost (0 when none settled).
    #[must_use]
    pub fn loss_pct(&self) -> f64 {
        let settled = self.received + self.lost;
        if settled == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / settled as f64
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &TargetStats) {
        self.sent += other.sent;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
        self.late += other.late;
        self.send_errors += other.send_errors;
        if other.last_send_error.is_some() {
            self.last_send_error = other.last_send_error;
        }
        self.errors.merge(&other.errors);
        self.rtt.merge(&other.rtt);
        for (a, b) in self.sizes.iter_mut().zip(&other.sizes) {
            a.merge(b);
        }
    }

    /// Returns the window so far and starts a new one.
    pub fn take(&mut self) -> TargetStats {
        std::mem::take(self)
    }
}

/// Engine-wide counters that belong to no single target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Packets dropped by the parser, by [`Reject`] reason (indexed by [`Reject::index`]).
    pub rejected: [u64; Reject::ALL.len()],
    /// Verified replies to probes no longer tracked (far too late, or from a previous assignment).
    pub untracked_replies: u64,
    /// Local send failures (all targets).
    pub send_errors: u64,
    /// Receive syscall failures other than "nothing to read".
    pub recv_errors: u64,
    /// Datagrams the kernel dropped because our receive queue was full (`SO_RXQ_OVFL`).
    pub socket_drops: u64,
    /// Probes expired early because the in-flight table wrapped onto them.
    pub inflight_overruns: u64,
    /// Kernel TX timestamps matched to a probe in flight.
    pub kernel_tx_stamps: u64,
    /// Kernel TX timestamps that matched no probe (too late, or implausible).
    pub unmatched_tx_stamps: u64,
    /// RTT samples measured from the user-space send stamp (no kernel TX stamp had arrived).
    pub user_send_stamps: u64,
    /// Replies to probes sent in a `sendmmsg` batch whose kernel TX stamp never came: received, but
    /// not an RTT sample (the batch's user-space stamp is earlier than the packet's own send).
    pub batch_unstamped: u64,
    /// Send syscalls made (`sendmsg` or `sendmmsg`): probes sent per call is the batching achieved.
    pub send_calls: u64,
    /// Replies whose wall-clock RTT disagreed with the monotonic clock (the wall clock stepped while
    /// the probe was out): received, but not an RTT sample.
    pub clock_steps: u64,
    /// Largest delay between a probe's scheduled and actual send time.
    pub max_schedule_lag: Duration,
}

impl EngineCounters {
    /// Total rejected packets.
    #[must_use]
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Counts one rejected packet.
    pub fn reject(&mut self, why: Reject) {
        self.rejected[why.index()] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_counts_only_settled_probes() {
        let s = TargetStats {
            sent: 10,
            received: 6,
            lost: 2,
            ..TargetStats::default()
        };
        assert!((s.loss_pct() - 25.0).abs() < 1e-9);
        assert_eq!(TargetStats::default().loss_pct(), 0.0);
    }

    #[test]
    fn errors_total_and_mtu() {
        let mut e = IcmpErrorCounts::default();
        e.record(IcmpErrorKind::HostUnreachable);
        e.record(IcmpErrorKind::FragmentationNeeded { mtu: 1400 });
        e.record(IcmpErrorKind::Other {
            icmp_type: 12,
            code: 0,
        });
        assert_eq!(e.total(), 3);
        assert_eq!(e.last_mtu, Some(1400));
    }

    #[test]
    fn take_starts_a_fresh_window() {
        let mut s = TargetStats {
            sent: 3,
            received: 3,
            ..TargetStats::default()
        };
        s.rtt.record_ns(5_000);
        let w = s.take();
        assert_eq!(w.sent, 3);
        assert_eq!(w.rtt.count(), 1);
        assert_eq!(s, TargetStats::default());
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = TargetStats {
            sent: 1,
            received: 1,
            ..TargetStats::default()
        };
        a.rtt.record_ns(1_000);
        let mut b = TargetStats {
            sent: 2,
            lost: 2,
            late: 1,
            ..TargetStats::default()
        };
        b.errors.record(IcmpErrorKind::TimeExceeded);
        a.merge(&b);
        assert_eq!(
            (a.sent, a.received, a.lost, a.late, a.errors.total()),
            (3, 1, 2, 1, 1)
        );
    }
}
