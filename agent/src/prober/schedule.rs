//! Even pacing: N targets probed every interval, spread evenly over it.
//!
//! Probe `k` of the whole schedule goes to target `k mod N` at `start + k·interval/N`. Sending in
//! bursts (all N at the top of each interval) would make the probes queue behind each other on the
//! sender's own NIC and in switches, and that self-inflicted queueing would show up as latency and
//! loss. Computing each due time from `k` (not by adding a rounded spacing) keeps the schedule
//! exact over hours and lets it catch up after a stall without drifting.

/// A schedule of probes over a fixed target count.
#[derive(Debug, Clone)]
pub struct Schedule {
    start_ns: u64,
    interval_ns: u64,
    targets: u64,
    next: u64,
    /// Total probes when the run is bounded (one-shot mode).
    limit: Option<u64>,
}

impl Schedule {
    /// A schedule starting at `start_ns` for `targets` targets, `per_target` probes each if bounded.
    #[must_use]
    pub fn new(start_ns: u64, interval_ns: u64, targets: usize, per_target: Option<u64>) -> Self {
        let targets = targets as u64;
        Self {
            start_ns,
            interval_ns: interval_ns.max(1),
            targets,
            next: 0,
            limit: per_target.map(|c| c.saturating_mul(targets)),
        }
    }

    /// Due time (ns) of probe number `k`.
    fn due_ns(&self, k: u64) -> u64 {
        let offset = u128::from(k) * u128::from(self.interval_ns) / u128::from(self.targets.max(1));
        self.start_ns
            .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    /// The next probe as `(target index, due time)`, if the schedule is not exhausted.
    #[must_use]
    pub fn peek(&self) -> Option<(usize, u64)> {
        self.peek_at(0)
    }

    /// The probe `ahead` places after the next one, as `(target index, due time)`, if the schedule
    /// reaches it: what a batch of sends looks at before any of them is marked done.
    #[must_use]
    pub fn peek_at(&self, ahead: u64) -> Option<(usize, u64)> {
        let k = self.next.checked_add(ahead)?;
        if self.targets == 0 || self.limit.is_some_and(|l| k >= l) {
            return None;
        }
        Some(((k % self.targets) as usize, self.due_ns(k)))
    }

    /// Marks the peeked probe as done.
    pub fn advance(&mut self) {
        self.next += 1;
    }

    /// True when a bounded schedule has handed out every probe.
    #[must_use]
    pub fn exhausted(&self) -> bool {
        self.peek().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_targets_evenly_over_the_interval() {
        let mut s = Schedule::new(1_000, 100, 4, Some(2));
        let mut got = Vec::new();
        while let Some(p) = s.peek() {
            got.push(p);
            s.advance();
        }
        assert_eq!(
            got,
            vec![
                (0, 1000),
                (1, 1025),
                (2, 1050),
                (3, 1075),
                (0, 1100),
                (1, 1125),
                (2, 1150),
                (3, 1175)
            ]
        );
        assert!(s.exhausted());
    }

    #[test]
    fn does_not_drift_with_uneven_spacing() {
        let mut s = Schedule::new(0, 1_000_000_000, 3, None);
        for _ in 0..3_000_000 {
            s.advance();
        }
        assert_eq!(s.peek(), Some((0, 1_000_000_000_000_000)));
    }

    #[test]
    fn peeking_ahead_sees_what_advancing_would() {
        let mut s = Schedule::new(1_000, 100, 4, Some(2));
        let ahead: Vec<_> = (0..9).map(|j| s.peek_at(j)).collect();
        let mut walked = Vec::new();
        for _ in 0..9 {
            walked.push(s.peek());
            s.advance();
        }
        assert_eq!(ahead, walked);
        assert_eq!(ahead[8], None, "a bounded schedule ends for peeks too");
    }

    #[test]
    fn empty_schedule_is_exhausted() {
        assert!(Schedule::new(0, 10, 0, None).exhausted());
    }
}
