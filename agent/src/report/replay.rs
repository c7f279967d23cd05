//! The bounded buffer of unacknowledged reports and the rule for when a new session may replay it.
//!
//! Why a buffer: the aggregator may restart (rolling update) while probing goes on, so windows
//! keep being taken on schedule while disconnected and wait here, bounded by count and by encoded
//! bytes (a report's size grows with the pinglist, so a count alone does not bound memory); the
//! oldest are dropped first, and counted (the aggregator sees the gap in sequence numbers too).
//!
//! Why the rule: a restarted aggregator has no edges for this agent until it assigned them, and
//! its first assignments hold only the peers that reconnected so far, so replaying too early would
//! drop the entries for the others. The buffer is therefore replayed once the session's assignment
//! holds every target the buffered reports mention, or at the latest a grace period after the
//! session opened: a peer that never comes back must not hold the buffer forever. Target ids are
//! stable across aggregators, so old reports land on the right edges, and the aggregator drops
//! duplicates by sequence number.

use std::collections::VecDeque;
use std::time::Duration;

use echomesh_proto::v1;
use prost::Message as _;

use super::wire::InForce;

/// Unacknowledged reports, oldest first, bounded.
#[derive(Debug)]
pub struct ReplayBuffer {
    reports: VecDeque<v1::Report>,
    cap: usize,
    max_bytes: usize,
    bytes: usize,
    dropped: u64,
}

/// Default bound on the encoded bytes of the buffered reports.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

impl ReplayBuffer {
    /// A buffer holding at most `cap` reports (at least 1).
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            reports: VecDeque::new(),
            cap: cap.max(1),
            max_bytes: DEFAULT_MAX_BYTES,
            bytes: 0,
            dropped: 0,
        }
    }

    /// The same buffer holding at most `max_bytes` of encoded reports (the newest is always kept).
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Adds a report, dropping the oldest while the count or the bytes are over the bound.
    pub fn push(&mut self, r: v1::Report) {
        let size = r.encoded_len();
        while !self.reports.is_empty()
            && (self.reports.len() >= self.cap || self.bytes + size > self.max_bytes)
        {
            self.pop_front();
            self.dropped += 1;
        }
        self.bytes += size;
        self.reports.push_back(r);
    }

    fn pop_front(&mut self) {
        if let Some(r) = self.reports.pop_front() {
            self.bytes = self.bytes.saturating_sub(r.encoded_len());
        }
    }

    /// Forgets every report up to and including `seq` (the aggregator merges in order).
    pub fn ack(&mut self, seq: u64) {
        while self.reports.front().is_some_and(|r| r.seq <= seq) {
            self.pop_front();
        }
    }

    /// Encoded bytes waiting.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reports waiting for an ack, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &v1::Report> {
        self.reports.iter()
    }

    /// Reports with a sequence number above `seq`, oldest first (those not yet sent on a session).
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &v1::Report> {
        self.reports.iter().filter(move |r| r.seq > seq)
    }

    /// Number waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.reports.len()
    }

    /// True when nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    /// Reports dropped because the buffer was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Longest a new session waits for an assignment covering the buffered reports before replaying
/// anyway.
#[must_use]
pub fn replay_grace(report_interval: Duration) -> Duration {
    (report_interval * 3).max(Duration::from_secs(2))
}

/// True when every target in every buffered report is in the assignment in force.
#[must_use]
pub fn buffer_covered(buffer: &ReplayBuffer, current: &InForce) -> bool {
    buffer.pending().all(|r| {
        r.targets
            .iter()
            .all(|t| current.slot(t.target_id).is_some())
    })
}

/// Whether an assigned session open for `open_for` may replay `buffer` under `current`.
#[must_use]
pub fn may_replay(open_for: Duration, buffer: &ReplayBuffer, current: &InForce) -> bool {
    buffer_covered(buffer, current) || open_for >= replay_grace(current.report_interval)
}

#[cfg(test)]
mod tests;
