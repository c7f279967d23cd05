//! The probe engine: sends evenly paced echo requests to every target, matches replies and errors,
//! and keeps per-target windows of counters and RTT histograms.
//!
//! One task owns the sockets and the state, so the hot path has no locks: it sends what is due
//! (in `sendmmsg` batches, each packet keyed for its own kernel TX stamp; one stamped `sendmsg`
//! per packet where the kernel gives no TX stamps), drains replies in `recvmmsg` batches, expires
//! probes past their deadline, and sleeps until the next probe or deadline. Everything else talks
//! to it through [`EngineHandle`] (run mode) or waits for [`run_bounded`] (one-shot mode).
//!
//! - [`schedule`]: even pacing of N targets over the interval.
//! - [`state`]: in-flight table, timeouts, duplicates, reordering, reachability flips (pure).
//! - [`stats`]: per-target counters and RTT histograms, windowed for reports.
//! - `io`: the sockets and the clock; `engine`: the loop and [`EngineHandle`].

mod engine;
mod io;
pub mod schedule;
pub mod state;
pub mod stats;

use std::net::IpAddr;
use std::time::Duration;

use crate::icmp::PAYLOAD_HEADER_LEN;
use crate::icmp::socket::SocketError;
pub use engine::{EngineHandle, run_bounded, start};
use stats::{EngineCounters, TargetStats};

/// Largest payload accepted: an IPv4 datagram is at most 65,535 bytes including 28 bytes of headers.
pub const MAX_PAYLOAD: usize = 65_507;

/// How targets are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Time between two probes to the same target.
    pub interval: Duration,
    /// How long to wait for a reply before a probe counts as lost.
    pub timeout: Duration,
    /// Bytes after the 8-byte ICMP header (at least 32: the signed probe stamp).
    pub payload_size: usize,
    /// When not 0, every other probe to each target carries this many payload bytes instead
    /// (don't-fragment is always set): a size near the path MTU, so an MTU black hole shows as
    /// these probes failing while the `payload_size` ones pass.
    pub alt_payload_size: usize,
    /// Consecutive unanswered probes after which a target is reported unreachable (see
    /// [`state`] for when a probe counts as unanswered).
    pub down_after: u32,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            payload_size: 56,
            alt_payload_size: 0,
            down_after: 6,
        }
    }
}

impl ProbeSettings {
    /// Checks the settings, saying what is wrong.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::InvalidSettings(m));
        if self.interval.is_zero() {
            return bad("the probe interval must be greater than zero".into());
        }
        if self.timeout.is_zero() {
            return bad("the probe timeout must be greater than zero".into());
        }
        let alt = (self.alt_payload_size != 0).then_some(self.alt_payload_size);
        for size in std::iter::once(self.payload_size).chain(alt) {
            if !(PAYLOAD_HEADER_LEN..=MAX_PAYLOAD).contains(&size) {
                return bad(format!(
                    "payload size {size} is out of range: it must be between \
                     {PAYLOAD_HEADER_LEN} (the signed probe stamp) and {MAX_PAYLOAD} bytes"
                ));
            }
        }
        Ok(())
    }

    /// The largest payload any probe carries (buffers are sized for it).
    #[must_use]
    pub fn max_payload(&self) -> usize {
        self.payload_size.max(self.alt_payload_size)
    }
}

/// One target: a stable id (from the assignment) and an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetSpec {
    /// Stable id; stats follow the id across reassignments.
    pub id: u64,
    /// Address probed.
    pub addr: IpAddr,
}

/// One target's counters for one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetWindow {
    /// Target id.
    pub id: u64,
    /// Target address.
    pub addr: IpAddr,
    /// What happened in the window.
    pub stats: TargetStats,
}

/// A target became reachable or unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetFlip {
    /// Target id.
    pub id: u64,
    /// Target address.
    pub addr: IpAddr,
    /// The new state.
    pub reachable: bool,
    /// Losses in a row when it went unreachable (0 when it came back).
    pub consecutive_losses: u32,
}

/// Why the engine could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A socket could not be opened or configured.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The settings make no sense.
    #[error("invalid probe settings: {0}")]
    InvalidSettings(String),
}

/// The result of a bounded run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every target's stats over the whole run, in target order.
    pub targets: Vec<TargetWindow>,
    /// Engine-wide counters.
    pub counters: EngineCounters,
    /// True when the run was cut short by the shutdown signal.
    pub interrupted: bool,
}
