//! Assignments an agent refused, kept per agent so `echomesh nodes` can say why.
//!
//! Why the aggregator keeps them: an agent that refuses an assignment (outside its
//! `--allow-cidr`, `--max-targets`, `--max-pps`, or settings its engine cannot run) keeps probing
//! its last good one, so its edges look fine while the pinglist the aggregator wants is not being
//! probed. The reason is shown next to the agent until a report of a newer generation, or a new
//! session, shows the agent runs what it was sent; each refusal is counted on `/metrics`.

use echomesh_proto::v1;

use super::text::escaped;
use super::{Ingest, IngestErrorReason};
use crate::graph::AgentKey;

/// Longest rejection reason kept, in bytes.
pub const MAX_REASON: usize = 512;

/// The latest refused assignment of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The refused assignment's generation.
    pub generation: u64,
    /// The agent's reason, escaped and bounded.
    pub reason: String,
}

impl Ingest {
    /// Records that `key` refused the assignment of `r.generation`.
    pub(super) fn assignment_rejected(&self, key: &AgentKey, r: &v1::AssignmentRejected) {
        self.count_error(IngestErrorReason::AssignmentRejected);
        let reason = escaped(&r.reason, MAX_REASON);
        tracing::warn!(agent = %key, generation = r.generation, reason = %reason, "the agent refused its assignment and keeps its last good one");
        self.inner.rejected.insert(
            key.clone(),
            Rejected {
                generation: r.generation,
                reason,
            },
        );
    }

    /// Forgets a refusal once `key` reports under a newer generation (or opens a new session:
    /// `generation` = `u64::MAX`).
    pub(super) fn assignment_applied(&self, key: &AgentKey, generation: u64) {
        if self
            .inner
            .rejected
            .get(key)
            .is_some_and(|r| generation > r.generation)
        {
            self.inner
                .rejected
                .remove_if(key, |_, r| generation > r.generation);
        }
    }

    /// Reports numbered by agents that never arrived (gaps in their sequence numbers).
    #[must_use]
    pub fn reports_lost(&self) -> u64 {
        self.inner
            .reports_lost
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts the gap before report `seq` of `agent`, if any.
    pub(super) fn count_gap(&self, key: &AgentKey, last_merged: u64, seq: u64) {
        if last_merged > 0 && seq > last_merged + 1 {
            let lost = seq - last_merged - 1;
            self.inner
                .reports_lost
                .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(agent = %key, lost, after = last_merged, "reports never arrived (the agent's replay buffer overflowed?)");
        }
    }

    /// Why `key` refused its latest assignment, if it did.
    #[must_use]
    pub fn rejection(&self, key: &AgentKey) -> Option<Rejected> {
        self.inner.rejected.get(key).map(|r| r.clone())
    }
}
