//! The edge state machine: UP / DEGRADED / DOWN / UNKNOWN with hysteresis.
//!
//! Pure and driven by the caller's clock, so tests step through it with explicit ticks (and the
//! staleness sweep with paused tokio time). Why hysteresis: a single lossy window on a busy node
//! must not page anyone, and a flapping link must not produce an event storm. Getting *worse*
//! needs [`Thresholds::raise_after`] consecutive windows that agree, getting *better* needs
//! [`Thresholds::clear_after`]; an agent's Alert (it already saw `down_after` consecutive losses)
//! moves to DOWN at once so detection does not wait for the report window. An edge whose source
//! agent stops reporting becomes UNKNOWN, never silently "up".
//!
//! Leaving DEGRADED for UP also needs enough clean probes to be sure, not only enough clean
//! windows: at 10 probes a window, a link losing 10 % of its probes sends a loss-free window a
//! third of the time, so "three clean windows" would let a steadily lossy edge flap between UP and
//! DEGRADED. The edge clears only after `3 / threshold` consecutive probes in windows below the
//! threshold (the rule of three: with none lost in that many, the loss is below the threshold with
//! 95 % confidence), e.g. 300 probes (30 s at 10 Hz) for the default 1 %.
//!
//! MTU black holes are a condition beside the state, not a state: when the agent alternates a
//! small and a large payload, an edge whose small probes pass while every large one is lost or
//! answered with fragmentation-needed for [`MTU_RAISE_AFTER`] windows in a row is marked, and the
//! mark clears after [`MTU_CLEAR_AFTER`] windows in which large probes came back. Such a window is
//! judged on its small probes only, so the edge shows UP with the mark rather than a DEGRADED whose
//! "loss" would send people looking for a congested link.

use std::time::Duration;

use echomesh_proto::v1::EdgeState;

/// When an edge counts as degraded or down, and how much evidence a change needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Window loss at or above this (percent) is DEGRADED.
    pub degraded_loss_pct: f64,
    /// Window loss at or above this (percent) is DOWN.
    pub down_loss_pct: f64,
    /// Window p99 at or above this is DEGRADED.
    pub degraded_p99: Duration,
    /// Consecutive worse windows before the state gets worse.
    pub raise_after: u8,
    /// Consecutive better windows before the state gets better.
    pub clear_after: u8,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            degraded_loss_pct: 1.0,
            down_loss_pct: 100.0,
            degraded_p99: Duration::from_millis(100),
            raise_after: 2,
            clear_after: 3,
        }
    }
}

/// What one report window says about an edge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Probes sent.
    pub sent: u64,
    /// Probes lost.
    pub lost: u64,
    /// p99 RTT of the window, when any reply came back.
    pub p99: Option<Duration>,
}

/// Severity order used for hysteresis (UNKNOWN is not on this scale).
fn rank(s: EdgeState) -> u8 {
    match s {
        EdgeState::Up => 1,
        EdgeState::Degraded => 2,
        EdgeState::Down => 3,
        EdgeState::Unknown | EdgeState::Unspecified => 0,
    }
}

fn from_u8(v: u8) -> EdgeState {
    EdgeState::try_from(i32::from(v)).unwrap_or(EdgeState::Unknown)
}

/// The per-edge machine: 4 bytes, stored inside the edge record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeMachine {
    /// The state (low nibble) and the pending state (high nibble).
    states: u8,
    pending_n: u8,
    /// Consecutive clean probes seen while DEGRADED, in units of [`CLEAN_UNIT`] (saturating).
    clean: u8,
    /// [`MTU_MARK`], [`RARE_MARK`], the windows of grace after an UP alert ([`GRACE`]) and the run
    /// of agreeing MTU windows (low bits).
    marks: u8,
}

/// Windows in a row whose large probes all fail while small ones pass before an edge is marked as
/// an MTU black hole.
pub const MTU_RAISE_AFTER: u8 = 2;
/// Windows in a row with large probes answered before the mark clears.
pub const MTU_CLEAR_AFTER: u8 = 3;
const MTU_MARK: u8 = 0x80;
const RARE_MARK: u8 = 0x40;
const MTU_RUN: u8 = 0x07;
/// Windows left in which a just-recovered edge may not get worse (see [`AFTER_UP_GRACE`]).
const GRACE: u8 = 0x30;
const GRACE_ONE: u8 = 0x10;

/// Report windows after an agent's UP alert in which the edge may not get worse: they still
/// carry the outage's losses (a probe is counted lost at its timeout, up to a second after it
/// was sent), already reported as DOWN. Without it a 1 s cut left a healed edge DEGRADED for the
/// 30 s the rule of three needs to clear it.
pub const AFTER_UP_GRACE: u8 = 2;

/// What one window's payload sizes say about the path MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtuEvidence {
    /// Small probes passed while every large one failed.
    BlackHole,
    /// Large probes came back.
    Passes,
    /// Nothing to judge (one size, or no large probe settled).
    None,
}

/// Probes per unit of [`EdgeMachine::clean`] (rounded down, so never overcounted): 255 units hold
/// 510 probes, what a threshold of 0.59 % needs; lower thresholds are capped there.
const CLEAN_UNIT: u64 = 2;

impl Thresholds {
    /// Consecutive loss-free probes that show, with 95 % confidence, that the loss is below
    /// `degraded_loss_pct` (the rule of three: `3 / p`), at most what [`EdgeMachine`] can count.
    #[must_use]
    pub fn clean_probes_to_clear(&self) -> u64 {
        let p = (self.degraded_loss_pct / 100.0).clamp(1e-9, 1.0);
        ((3.0 / p).ceil() as u64).min(u64::from(u8::MAX) * CLEAN_UNIT)
    }
}

impl Default for EdgeMachine {
    fn default() -> Self {
        Self {
            states: (EdgeState::Unknown as u8) | (EdgeState::Unknown as u8) << 4,
            pending_n: 0,
            clean: 0,
            marks: 0,
        }
    }
}

/// A state change: `(from, to)`.
pub type Transition = (EdgeState, EdgeState);

/// How bad a state is, for sorting and for picking the worst of several edges: DOWN 3,
/// DEGRADED 2, UNKNOWN 1, UP 0.
#[must_use]
pub fn severity(s: EdgeState) -> u8 {
    match s {
        EdgeState::Down => 3,
        EdgeState::Degraded => 2,
        EdgeState::Unknown | EdgeState::Unspecified => 1,
        EdgeState::Up => 0,
    }
}

impl EdgeMachine {
    /// The current state.
    #[must_use]
    pub fn state(&self) -> EdgeState {
        from_u8(self.states & 0x0f)
    }

    fn pending(&self) -> EdgeState {
        from_u8(self.states >> 4)
    }

    fn set_pending(&mut self, s: EdgeState) {
        self.states = (self.states & 0x0f) | (s as u8) << 4;
    }

    /// True while the edge is marked as an MTU black hole.
    #[must_use]
    pub fn mtu_blackhole(&self) -> bool {
        self.marks & MTU_MARK != 0
    }

    /// True once the edge has rare facts (errors, refused sends) kept beside the record.
    #[must_use]
    pub fn has_rare(&self) -> bool {
        self.marks & RARE_MARK != 0
    }

    /// Notes that the edge has rare facts kept beside the record.
    pub fn mark_rare(&mut self) {
        self.marks |= RARE_MARK;
    }

    /// Feeds one window's MTU evidence; returns the new mark when it changed.
    pub fn observe_mtu(&mut self, e: MtuEvidence) -> Option<bool> {
        let marked = self.mtu_blackhole();
        let against = match (e, marked) {
            (MtuEvidence::None, _) => return None,
            (MtuEvidence::BlackHole, false) | (MtuEvidence::Passes, true) => true,
            _ => false,
        };
        if !against {
            self.marks &= !MTU_RUN;
            return None;
        }
        let run = ((self.marks & MTU_RUN) + 1).min(MTU_RUN);
        let need = if marked {
            MTU_CLEAR_AFTER
        } else {
            MTU_RAISE_AFTER
        };
        if run >= need {
            self.marks = (self.marks & (RARE_MARK | GRACE)) | if marked { 0 } else { MTU_MARK };
            return Some(!marked);
        }
        self.marks = (self.marks & !MTU_RUN) | run;
        None
    }

    /// Classifies one window; `None` when nothing was sent (no evidence either way).
    #[must_use]
    pub fn classify(t: &Thresholds, w: &Window) -> Option<EdgeState> {
        if w.sent == 0 {
            return None;
        }
        let loss = 100.0 * w.lost.min(w.sent) as f64 / w.sent as f64;
        Some(if loss >= t.down_loss_pct {
            EdgeState::Down
        } else if loss >= t.degraded_loss_pct || w.p99.is_some_and(|p| p >= t.degraded_p99) {
            EdgeState::Degraded
        } else {
            EdgeState::Up
        })
    }

    /// Feeds one report window.
    pub fn observe(&mut self, t: &Thresholds, w: &Window) -> Option<Transition> {
        let seen = Self::classify(t, w)?;
        if self.marks & GRACE != 0 {
            self.marks -= GRACE_ONE;
            if rank(seen) > rank(self.state()) {
                return None;
            }
        }
        let cur = self.state();
        if cur == EdgeState::Unknown {
            // First evidence (or evidence after staleness) is taken at face value.
            return self.set(seen);
        }
        if seen == cur {
            self.pending_n = 0;
            self.clean = 0;
            return None;
        }
        if self.pending() == seen {
            self.pending_n = self.pending_n.saturating_add(1);
        } else {
            self.set_pending(seen);
            self.pending_n = 1;
            self.clean = 0;
        }
        let need = if rank(seen) > rank(cur) {
            t.raise_after
        } else {
            t.clear_after
        };
        if cur == EdgeState::Degraded && seen == EdgeState::Up {
            // Counted while every window of the run is below the threshold (classify says UP).
            let units = (w.sent / CLEAN_UNIT).min(u64::from(u8::MAX)) as u8;
            self.clean = self.clean.saturating_add(units);
            if u64::from(self.clean) * CLEAN_UNIT < t.clean_probes_to_clear() {
                return None;
            }
        }
        if self.pending_n >= need.max(1) {
            return self.set(seen);
        }
        None
    }

    /// Feeds an agent alert: unreachable goes DOWN now; reachable lifts DOWN to UP now.
    pub fn alert(&mut self, reachable: bool) -> Option<Transition> {
        match (reachable, self.state()) {
            (false, EdgeState::Down) => None,
            (false, _) => self.set(EdgeState::Down),
            (true, EdgeState::Down | EdgeState::Unknown) => {
                let tr = self.set(EdgeState::Up);
                self.marks = (self.marks & !GRACE) | (AFTER_UP_GRACE * GRACE_ONE);
                tr
            }
            (true, _) => None,
        }
    }

    /// The source stopped reporting: UNKNOWN.
    pub fn stale(&mut self) -> Option<Transition> {
        if self.state() == EdgeState::Unknown {
            return None;
        }
        self.set(EdgeState::Unknown)
    }

    fn set(&mut self, to: EdgeState) -> Option<Transition> {
        let from = self.state();
        self.states = (to as u8) | (to as u8) << 4;
        self.pending_n = 0;
        self.clean = 0;
        (from != to).then_some((from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(sent: u64, lost: u64) -> Window {
        Window {
            sent,
            lost,
            p99: Some(Duration::from_micros(200)),
        }
    }

    #[test]
    fn first_window_sets_state_directly() {
        let t = Thresholds::default();
        let mut m = EdgeMachine::default();
        assert_eq!(m.state(), EdgeState::Unknown);
        assert_eq!(
            m.observe(&t, &w(100, 0)),
            Some((EdgeState::Unknown, EdgeState::Up))
        );
    }

    #[test]
    fn one_bad_window_does_not_flip_but_two_do() {
        let t = Thresholds::default();
        let mut m = EdgeMachine::default();
        m.observe(&t, &w(100, 0));
        assert_eq!(m.observe(&t, &w(100, 5)), None);
        assert_eq!(m.observe(&t, &w(100, 0)), None, "a good window resets");
        assert_eq!(m.observe(&t, &w(100, 5)), None);
        assert_eq!(
            m.observe(&t, &w(100, 5)),
            Some((EdgeState::Up, EdgeState::Degraded))
        );
    }

    #[test]
    fn recovery_needs_clear_after_good_windows() {
        let t = Thresholds::default();
        let mut m = EdgeMachine::default();
        m.observe(&t, &w(10, 10));
        assert_eq!(m.state(), EdgeState::Down);
        assert_eq!(m.observe(&t, &w(10, 0)), None);
        assert_eq!(m.observe(&t, &w(10, 0)), None);
        assert_eq!(
            m.observe(&t, &w(10, 0)),
            Some((EdgeState::Down, EdgeState::Up))
        );
    }

    #[test]
    fn high_p99_is_degraded() {
        let t = Thresholds::default();
        let slow = Window {
            sent: 10,
            lost: 0,
            p99: Some(Duration::from_millis(150)),
        };
        assert_eq!(EdgeMachine::classify(&t, &slow), Some(EdgeState::Degraded));
    }

    #[test]
    fn empty_window_is_no_evidence() {
        let t = Thresholds::default();
        let mut m = EdgeMachine::default();
        assert_eq!(m.observe(&t, &w(0, 0)), None);
        assert_eq!(m.state(), EdgeState::Unknown);
    }

    #[test]
    fn alert_is_immediate_and_stale_goes_unknown() {
        let t = Thresholds::default();
        let mut m = EdgeMachine::default();
        m.observe(&t, &w(10, 0));
        assert_eq!(m.alert(false), Some((EdgeState::Up, EdgeState::Down)));
        assert_eq!(m.alert(false), None);
        assert_eq!(m.alert(true), Some((EdgeState::Down, EdgeState::Up)));
        assert_eq!(m.stale(), Some((EdgeState::Up, EdgeState::Unknown)));
        assert_eq!(m.stale(), None);
    }

    #[test]
    fn a_healed_edge_is_not_degraded_by_the_outages_own_losses() {
        let t = Thresholds::default();
        let mut m = EdgeMachine::default();
        m.observe(&t, &w(10, 0));
        m.observe_mtu(MtuEvidence::BlackHole);
        assert_eq!(m.alert(false), Some((EdgeState::Up, EdgeState::Down)));
        assert_eq!(m.alert(true), Some((EdgeState::Down, EdgeState::Up)));
        // The two windows after the heal still count the cut's probes as they time out.
        assert_eq!(m.observe(&t, &w(10, 6)), None);
        assert_eq!(m.observe(&t, &w(10, 10)), None);
        assert_eq!(m.state(), EdgeState::Up);
        assert_eq!(m.marks & MTU_RUN, 1, "the MTU run is kept apart");
        // Loss after that is new evidence again.
        assert_eq!(m.observe(&t, &w(10, 3)), None);
        assert_eq!(
            m.observe(&t, &w(10, 3)),
            Some((EdgeState::Up, EdgeState::Degraded))
        );
    }

    #[test]
    fn machine_is_four_bytes() {
        assert_eq!(std::mem::size_of::<EdgeMachine>(), 4);
    }

    #[test]
    fn mtu_mark_needs_two_windows_to_raise_and_three_to_clear() {
        use MtuEvidence::{BlackHole, None as Nothing, Passes};
        let t = Thresholds::default();
        let mut m = EdgeMachine::default();
        m.observe(&t, &w(10, 0));
        m.mark_rare();
        assert_eq!(m.observe_mtu(BlackHole), None);
        assert_eq!(
            m.observe_mtu(Passes),
            None,
            "a passing window resets the run"
        );
        assert_eq!(m.observe_mtu(BlackHole), None);
        assert_eq!(m.observe_mtu(Nothing), None, "no evidence keeps the run");
        assert_eq!(m.observe_mtu(BlackHole), Some(true));
        assert!(m.mtu_blackhole());
        assert_eq!(m.state(), EdgeState::Up, "a condition beside the state");
        assert_eq!(m.observe_mtu(BlackHole), None);
        assert_eq!(m.observe_mtu(Passes), None);
        assert_eq!(m.observe_mtu(Passes), None);
        assert_eq!(m.observe_mtu(Passes), Some(false));
        assert!(!m.mtu_blackhole());
        assert!(m.has_rare(), "the rare mark stays");
        // State changes leave the marks alone.
        m.observe_mtu(BlackHole);
        m.observe_mtu(BlackHole);
        assert_eq!(m.alert(false), Some((EdgeState::Up, EdgeState::Down)));
        assert!(m.mtu_blackhole() && m.has_rare());
    }

    /// A small deterministic generator, so the loss pattern is random-looking and repeatable.
    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Ten minutes of 1 s windows of 10 probes with each probe lost at `loss`: the transitions.
    fn ten_minutes_at(loss: f64, seed: u64) -> Vec<Transition> {
        let t = Thresholds::default();
        let mut m = EdgeMachine::default();
        let mut rng = seed;
        let mut out = Vec::new();
        m.observe(&t, &w(10, 0));
        for _ in 0..600 {
            let lost = (0..10).filter(|_| lcg(&mut rng) < loss).count() as u64;
            if let Some(tr) = m.observe(&t, &w(10, lost)) {
                out.push(tr);
            }
        }
        out
    }

    #[test]
    fn steady_loss_above_the_threshold_does_not_flap() {
        for seed in 1..=20 {
            let tr = ten_minutes_at(0.10, seed);
            assert_eq!(
                tr,
                vec![(EdgeState::Up, EdgeState::Degraded)],
                "seed {seed}: at most one transition in 10 minutes at 10 % loss"
            );
        }
    }

    #[test]
    fn degraded_clears_after_enough_clean_probes_not_three_windows() {
        let t = Thresholds::default();
        assert_eq!(t.clean_probes_to_clear(), 300);
        let mut m = EdgeMachine::default();
        m.observe(&t, &w(10, 0));
        m.observe(&t, &w(10, 2));
        m.observe(&t, &w(10, 2));
        assert_eq!(m.state(), EdgeState::Degraded);
        for i in 0..29 {
            assert_eq!(m.observe(&t, &w(10, 0)), None, "clean window {i}");
        }
        assert_eq!(
            m.observe(&t, &w(10, 0)),
            Some((EdgeState::Degraded, EdgeState::Up)),
            "300 clean probes"
        );
        // A lost probe restarts the count.
        m.observe(&t, &w(10, 2));
        m.observe(&t, &w(10, 2));
        for _ in 0..20 {
            m.observe(&t, &w(10, 0));
        }
        m.observe(&t, &w(10, 1));
        for _ in 0..20 {
            assert_eq!(m.observe(&t, &w(10, 0)), None);
        }
    }
}
