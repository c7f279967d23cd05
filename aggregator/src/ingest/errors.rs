//! Why ingest refused a session or a message, counted per reason.
//!
//! Why a fixed enum and not free-form strings: the reasons are the `reason` label of
//! `echomesh_ingest_errors_total`, and a bounded label set keeps the series count fixed.

use std::sync::atomic::Ordering;

use tonic::{Code, Status};

use super::Ingest;

/// Why ingest refused a session or a message (the `reason` label of
/// `echomesh_ingest_errors_total`); entries the graph ignores are counted in
/// [`crate::graph::GraphCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestErrorReason {
    /// No Hello within the hello timeout.
    HelloTimeout,
    /// The first message was not a Hello.
    FirstNotHello,
    /// The Hello did not validate.
    BadHello,
    /// A second Hello in one session.
    RepeatedHello,
    /// A Hello refused because a newer agent of the same node and network is active.
    StandBy,
    /// A report refused as a whole (sequence 0).
    BadReport,
    /// A message over the size limit.
    MessageTooLarge,
    /// The agent's stream failed otherwise.
    StreamError,
    /// The agent refused an assignment (it keeps its last good one).
    AssignmentRejected,
    /// A Hello refused because `--max-agents` sessions are open.
    TooManyAgents,
    /// A report refused before the merge: counters that cannot be, more entries than assigned,
    /// or no assignment yet.
    InadmissibleReport,
    /// A message refused before decoding: more repeated entries than the largest assignment.
    TooManyEntries,
}

impl IngestErrorReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 12] = [
        Self::HelloTimeout,
        Self::FirstNotHello,
        Self::BadHello,
        Self::RepeatedHello,
        Self::StandBy,
        Self::BadReport,
        Self::MessageTooLarge,
        Self::StreamError,
        Self::AssignmentRejected,
        Self::TooManyAgents,
        Self::InadmissibleReport,
        Self::TooManyEntries,
    ];

    /// The metric label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::HelloTimeout => "hello_timeout",
            Self::FirstNotHello => "first_not_hello",
            Self::BadHello => "bad_hello",
            Self::RepeatedHello => "repeated_hello",
            Self::StandBy => "standby",
            Self::BadReport => "bad_report",
            Self::MessageTooLarge => "message_too_large",
            Self::StreamError => "stream_error",
            Self::AssignmentRejected => "assignment_rejected",
            Self::TooManyAgents => "too_many_agents",
            Self::InadmissibleReport => "inadmissible_report",
            Self::TooManyEntries => "too_many_entries",
        }
    }
}

impl Ingest {
    /// Errors counted so far, by reason (for `/metrics`).
    #[must_use]
    pub fn errors(&self) -> [(IngestErrorReason, u64); IngestErrorReason::ALL.len()] {
        IngestErrorReason::ALL.map(|r| (r, self.inner.errors[r as usize].load(Ordering::Relaxed)))
    }

    pub(super) fn count_error(&self, r: IngestErrorReason) {
        self.inner.errors[r as usize].fetch_add(1, Ordering::Relaxed);
    }
}

impl Ingest {
    /// Counts a failed inbound stream and maps it with [`map_inbound_error`].
    pub(super) fn map_inbound_error(&self, status: Status) -> Status {
        let mapped = map_inbound_error(status);
        let refused = mapped.message().starts_with(echomesh_proto::bound::REFUSED);
        self.count_error(if refused && mapped.code() == Code::ResourceExhausted {
            IngestErrorReason::TooManyEntries
        } else if mapped.code() == Code::ResourceExhausted {
            IngestErrorReason::MessageTooLarge
        } else {
            IngestErrorReason::StreamError
        });
        mapped
    }
}

/// tonic reports an oversized message as OUT_OF_RANGE; the protocol promises RESOURCE_EXHAUSTED.
fn map_inbound_error(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("too large") {
        Status::resource_exhausted(status.message().to_string())
    } else {
        status
    }
}
