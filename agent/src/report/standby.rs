//! Standing by while a newer agent of the same node and network holds the session.
//!
//! Why: during a surge rollout the old and the new agent pod of a node run side by side. The
//! aggregator keeps the one that started later and refuses the other with `ALREADY_EXISTS`. An
//! agent that retried at its usual backoff would only be refused again (or, against an
//! aggregator without that rule, take the session back and start a replace loop), so it waits
//! [`STANDBY_WAIT`] between attempts instead, keeps probing and buffering, and takes over on the
//! first attempt after the winner is gone (normally it is deleted first, as the rollout ends).

use std::time::Duration;

use tonic::{Code, Status};

use super::connect::ConnectError;

/// How long an agent told to stand by waits before it asks again.
pub const STANDBY_WAIT: Duration = Duration::from_secs(30);

/// The aggregator said a newer agent of this node and network is active.
#[must_use]
pub fn is_standby(status: &Status) -> bool {
    status.code() == Code::AlreadyExists
}

/// [`is_standby`] for a failed attempt to open a session.
#[must_use]
pub fn refused_for_standby(e: &ConnectError) -> bool {
    matches!(e, ConnectError::Status(st) if is_standby(st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_already_exists_means_stand_by() {
        assert!(is_standby(&Status::already_exists("newer agent")));
        assert!(!is_standby(&Status::aborted("replaced")));
        assert!(!is_standby(&Status::unavailable("shutting down")));
        assert!(refused_for_standby(&ConnectError::Status(
            Status::already_exists("x")
        )));
        assert!(!refused_for_standby(&ConnectError::Status(
            Status::internal("x")
        )));
    }
}
