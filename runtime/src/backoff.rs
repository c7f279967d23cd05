//! Reconnect pacing shared by every client loop (the agent's session, the CLI's `watch`, the
//! simulated agents): waits double up to a cap, and jitter spreads a fleet of agents that lost
//! the same aggregator at the same moment, so they do not return in lockstep.

use std::time::Duration;

use rand::Rng as _;

/// Exponential backoff with equal jitter: each wait is in `[d/2, d]`, `d` doubling from `min` up
/// to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `min`, never waits longer than `max` (a `max` below `min` is raised to `min`).
    #[must_use]
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max: max.max(min),
        }
    }

    /// The next wait; each call doubles the one after it, up to the cap.
    pub fn next_wait(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = d / 2;
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(rand::rng().random_range(0..=span))
    }

    /// Starts over at `min` (after a connection that worked).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let waits: Vec<Duration> = (0..8).map(|_| b.next_wait()).collect();
        let caps = [100u64, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (w, cap) in waits.iter().zip(caps) {
            let cap = Duration::from_millis(cap);
            assert!(
                *w >= cap / 2 && *w <= cap + Duration::from_micros(1),
                "{w:?} vs {cap:?}"
            );
        }
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100) + Duration::from_micros(1));
    }

    #[test]
    fn a_max_below_the_min_is_the_min() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_millis(10));
        for _ in 0..4 {
            assert!(b.next_wait() <= Duration::from_secs(1) + Duration::from_micros(1));
        }
    }
}
