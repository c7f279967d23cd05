//! Waiting for a condition in tests without fixed sleeps.
//!
//! A fixed sleep is either too short on a loaded machine (a flake) or too long everywhere (a slow
//! suite). Polling with a generous deadline is both fast and stable, and when it does time out the
//! panic names what was awaited, so the failure says which promise was broken.

use std::future::Future;
use std::time::Duration;

/// Generous bound for anything that should happen "soon" (tests must never flake).
pub const SOON: Duration = Duration::from_secs(10);

/// How often [`soon`] polls.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` every `poll` until it returns true; panics naming `what` after `timeout`.
///
/// The condition is always checked at least once, and once more at the deadline.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, poll: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// [`eventually`] within [`SOON`], polling every [`POLL`].
pub async fn soon<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(what, SOON, POLL, condition).await;
}

/// Polls `probe` until it yields `Some`, and returns that value; panics naming `what` after
/// `timeout`.
pub async fn eventually_some<T, F, Fut>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests;
