//! Which of two agents claiming the same node and network keeps the session.
//!
//! Why a rule and not "the last Hello wins": during a surge rollout of the DaemonSet the old and
//! the new agent pod of a node run side by side, and if each Hello replaced the other they would
//! take turns forever (reconnect loop, a replacement event each time, edges flapping between two
//! processes' views). The agent that started later wins; the other is told so with
//! `ALREADY_EXISTS` and stands by until the winner is gone. A restart of the same pod still takes
//! over at once. An agent that sends no start time (an older version) counts as the older one, so
//! in a rollout from such a version the new agents win; between two of them the last Hello wins,
//! as they expect.

use echomesh_proto::v1;
use tonic::Status;

/// What a session's Hello says about the process behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Pod name.
    pub pod: String,
    /// Process start, unix milliseconds (0: not sent).
    pub started_at_ms: u64,
    /// The session passed agent authentication (always false when none is configured).
    pub authenticated: bool,
}

impl Claim {
    /// The claim a Hello makes.
    #[must_use]
    pub fn of(h: &v1::Hello) -> Self {
        Self {
            pod: h.pod.chars().take(253).collect(),
            started_at_ms: h.started_at_unix_ms,
            authenticated: false,
        }
    }
}

/// True when `new` may not take the place of `current` at all: an authenticated agent is never
/// replaced (nor told to stand by) by a session that did not authenticate.
#[must_use]
pub fn takeover_refused(current: &Claim, new: &Claim) -> bool {
    current.authenticated && !new.authenticated
}

/// True when `new` must stand by because `current` is a newer agent (a later start, or the same
/// start and a greater pod name, so the order is total; no start time is the oldest). The same pod
/// always takes over (its process restarted or reconnected), and so does any Hello when neither
/// side sent a start time.
#[must_use]
pub fn stands_by(current: &Claim, new: &Claim) -> bool {
    if new.pod == current.pod || (new.started_at_ms == 0 && current.started_at_ms == 0) {
        return false;
    }
    (new.started_at_ms, &new.pod) < (current.started_at_ms, &current.pod)
}

/// The status for an agent that must stand by: `ALREADY_EXISTS`, which agents treat as "wait long,
/// do not fight back".
#[must_use]
pub fn standby_status(winner: &Claim) -> Status {
    Status::already_exists(format!(
        "a newer agent of the same node and network is active (pod {:?}); standing by until it goes away",
        winner.pod
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(pod: &str, at: u64) -> Claim {
        Claim {
            pod: pod.into(),
            started_at_ms: at,
            authenticated: false,
        }
    }

    #[test]
    fn an_unauthenticated_session_never_takes_an_authenticated_agents_place() {
        let authed = Claim {
            authenticated: true,
            ..c("real", 1000)
        };
        assert!(takeover_refused(&authed, &c("impostor", 9000)));
        assert!(!takeover_refused(&authed, &authed));
        assert!(!takeover_refused(&c("old", 1000), &authed));
        assert!(!takeover_refused(&c("old", 1000), &c("new", 2000)));
    }

    #[test]
    fn the_later_start_wins_and_the_earlier_stands_by() {
        assert!(stands_by(&c("new", 2000), &c("old", 1000)));
        assert!(!stands_by(&c("old", 1000), &c("new", 2000)));
    }

    #[test]
    fn equal_starts_are_ordered_by_pod_name() {
        assert!(stands_by(&c("b", 1000), &c("a", 1000)));
        assert!(!stands_by(&c("a", 1000), &c("b", 1000)));
    }

    #[test]
    fn the_same_pod_takes_over() {
        assert!(!stands_by(&c("p", 2000), &c("p", 1000)));
        assert!(!stands_by(&c("p", 0), &c("p", 0)));
    }

    #[test]
    fn no_start_time_is_the_oldest_and_two_without_it_keep_last_hello_wins() {
        // Rolling out from a version without the field: the new agent wins both ways round.
        assert!(stands_by(&c("new", 2000), &c("old", 0)));
        assert!(!stands_by(&c("old", 0), &c("new", 2000)));
        assert!(!stands_by(&c("b", 0), &c("a", 0)));
        assert!(!stands_by(&c("a", 0), &c("b", 0)));
    }

    #[test]
    fn the_standby_message_says_who_is_active() {
        let st = standby_status(&c("agent-x", 1));
        assert_eq!(st.code(), tonic::Code::AlreadyExists);
        assert_eq!(
            st.message(),
            "a newer agent of the same node and network is active (pod \"agent-x\"); standing by until it goes away"
        );
    }
}
