//! The fixed-size per-edge RTT sketch and loss ring.
//!
//! Why not keep the agents' [`Histogram`]: it is sparse and exact to 1%, but a merged histogram
//! can hold up to 1038 buckets, and the aggregator must hold 25M edges in memory. So each edge keeps:
//! - [`RttSketch`]: 68 `u8` counts over coarse buckets of 8 fine buckets each, covering 10 µs to
//!   ~0.5 s (values outside clamp to the end buckets; the exact extremes are not kept). A quantile
//!   is reported at the coarse bucket's geometric midpoint, within [`SKETCH_RELATIVE_ERROR`]
//!   (9%: γ^4 − 1 = 8.3%) of the true value inside the range — fine enough to see a 2 ms delay to
//!   ±0.2 ms. Counts halve every time the edge's minute advances, so the sketch describes roughly
//!   the last one to two minutes (a sample two minutes old weighs at most a quarter). When a merge
//!   would overflow a `u8`, the whole sketch (old counts and new) is halved as often as needed
//!   before storing, which keeps the proportions, and so the quantiles, intact. Why `u8` and not
//!   fewer `u16`: quantiles depend on proportions, and 255 in the fullest bucket still resolves a
//!   p99 of a few hundred samples, while twice the buckets halve the error in the same 68 bytes.
//! - [`LossRing`]: ten one-minute slots of `(sent, lost)` in `u16` and the worst report-window p99
//!   as a coarse bucket in `u8`, so loss over the last minute and ten minutes and the worst p99 of
//!   ten minutes (same 9% bound) cost 50 bytes.
//!
//! Both are plain arrays: merging a report into an edge is a handful of additions, no allocation.

use echomesh_proto::Histogram;
use echomesh_proto::histogram::{BUCKETS, MIN_NS, RELATIVE_ACCURACY, bucket_index};

/// Time in the graph: 10 ms ticks since the aggregator started (u32 lasts 497 days).
pub type Tick = u32;
/// Ticks per second.
pub const TICKS_PER_SEC: u32 = 100;
/// Coarse RTT buckets per edge.
pub const SKETCH_BUCKETS: usize = 68;
/// Fine histogram buckets per coarse bucket.
const FINE_PER_COARSE: u16 = 8;
/// The first fine bucket of coarse bucket 0: values up to ~10 µs land in bucket 0.
const FINE_BASE: u16 = 224;
/// Bound on the relative error of a sketch quantile inside 10 µs ..= 0.5 s.
pub const SKETCH_RELATIVE_ERROR: f64 = 0.09;
/// One loss-ring slot.
const MINUTE_TICKS: u32 = 60 * TICKS_PER_SEC;
/// Loss-ring length in minutes.
pub const RING_MINUTES: usize = 10;

/// Maps a fine histogram bucket to its coarse sketch bucket.
#[must_use]
pub fn coarse_of(fine: u16) -> usize {
    (usize::from(fine.saturating_sub(FINE_BASE)) / usize::from(FINE_PER_COARSE))
        .min(SKETCH_BUCKETS - 1)
}

/// The value reported for coarse bucket `c`, in nanoseconds: the geometric middle of its range.
#[must_use]
pub fn coarse_value_ns(c: usize) -> f64 {
    // Coarse bucket c spans (MIN·γ^(lo-1), MIN·γ^(lo+7)]; its log-centre is MIN·γ^(lo+3).
    let lo = FINE_BASE as usize + c * FINE_PER_COARSE as usize;
    let centre = (lo + FINE_PER_COARSE as usize / 2 - 1).min(BUCKETS - 1);
    let gamma = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
    MIN_NS as f64 * gamma.powi(centre as i32)
}

/// A decaying coarse RTT histogram of fixed size (68 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttSketch {
    counts: [u8; SKETCH_BUCKETS],
}

impl Default for RttSketch {
    fn default() -> Self {
        Self {
            counts: [0; SKETCH_BUCKETS],
        }
    }
}

impl RttSketch {
    /// Adds every sample of `h`.
    pub fn merge(&mut self, h: &Histogram) {
        self.merge_bins(h.bins().iter().copied());
    }

    /// Adds wire-form buckets that were already validated (indices in range).
    pub fn merge_wire(&mut self, indices: &[u32], counts: &[u32]) {
        self.merge_bins(
            indices
                .iter()
                .zip(counts)
                .map(|(&i, &c)| (i.min(u32::from(u16::MAX)) as u16, c)),
        );
    }

    fn merge_bins(&mut self, bins: impl Iterator<Item = (u16, u32)>) {
        let mut wide = self.counts.map(u32::from);
        for (fine, count) in bins {
            let c = coarse_of(fine);
            wide[c] = wide[c].saturating_add(count);
        }
        // Halve old and new together until the fullest bucket fits: proportions are kept.
        let max = wide.iter().copied().max().unwrap_or(0);
        let mut shift = 0;
        while (max >> shift) > u32::from(u8::MAX) {
            shift += 1;
        }
        for (d, w) in self.counts.iter_mut().zip(wide) {
            *d = (w >> shift) as u8;
        }
    }

    /// Halves every count (the decay step).
    pub fn halve(&mut self) {
        for c in &mut self.counts {
            *c >>= 1;
        }
    }

    /// Adds this sketch's counts into a wide accumulator (for node and cluster percentiles).
    pub fn add_to(&self, acc: &mut [u64; SKETCH_BUCKETS]) {
        for (a, &c) in acc.iter_mut().zip(&self.counts) {
            *a += u64::from(c);
        }
    }

    /// The counts.
    #[must_use]
    pub fn counts(&self) -> &[u8; SKETCH_BUCKETS] {
        &self.counts
    }
}

/// The `q`-quantile of coarse counts in nanoseconds; `None` when empty.
#[must_use]
pub fn quantile_ns<T: Copy + Into<u64>>(counts: &[T], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().map(|&c| c.into()).sum();
    if total == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = echomesh_proto::histogram::nearest_rank(q, total);
    let mut seen = 0;
    for (i, &c) in counts.iter().enumerate() {
        seen += c.into();
        if seen > rank {
            return Some(coarse_value_ns(i));
        }
    }
    None
}

/// Ten one-minute slots of sent/lost (`u16`) and the worst report-window p99 as a coarse sketch
/// bucket (`u8`, 0 = none): 50 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossRing {
    sent_lost: [[u16; 2]; RING_MINUTES],
    p99: [u8; RING_MINUTES],
}

impl LossRing {
    /// Moves the ring forward from minute `from` to minute `to`, clearing skipped slots.
    fn advance(&mut self, from: u32, to: u32) {
        if to <= from {
            return;
        }
        let steps = (to - from).min(RING_MINUTES as u32);
        for k in 1..=steps {
            let i = ((from + k) as usize) % RING_MINUTES;
            self.sent_lost[i] = [0, 0];
            self.p99[i] = 0;
        }
    }

    /// Adds one report window at minute `minute` (the ring's newest minute is `*head`); returns
    /// how many minutes the ring moved forward.
    pub fn record(
        &mut self,
        head: &mut u32,
        minute: u32,
        sent: u64,
        lost: u64,
        p99_fine: u16,
    ) -> u32 {
        let mut advanced = 0;
        if minute > *head {
            self.advance(*head, minute);
            advanced = minute - *head;
            *head = minute;
        }
        if *head - minute >= RING_MINUTES as u32 {
            return advanced; // older than the ring: only the totals count it
        }
        let i = (minute as usize) % RING_MINUTES;
        let sl = &mut self.sent_lost[i];
        sl[0] = sl[0].saturating_add(sat16(sent));
        sl[1] = sl[1].saturating_add(sat16(lost));
        if p99_fine > 0 {
            self.p99[i] = self.p99[i].max(coarse_of(p99_fine) as u8 + 1);
        }
        advanced
    }

    /// Loss in percent over the last `minutes` full minutes before `now` plus the current one, with
    /// the oldest minute weighted by how much of it still lies inside the window.
    #[must_use]
    pub fn loss_pct(&self, head: u32, now: Tick, minutes: u32) -> Option<f64> {
        let cur = now / MINUTE_TICKS;
        let frac = f64::from(now % MINUTE_TICKS) / f64::from(MINUTE_TICKS);
        let (mut sent, mut lost) = (0.0, 0.0);
        for back in 0..=minutes.min(RING_MINUTES as u32 - 1) {
            let Some(m) = cur.checked_sub(back) else {
                break;
            };
            if m > head || head - m >= RING_MINUTES as u32 {
                continue;
            }
            let w = if back == minutes { 1.0 - frac } else { 1.0 };
            let [s, l] = self.sent_lost[(m as usize) % RING_MINUTES];
            sent += w * f64::from(s);
            lost += w * f64::from(l);
        }
        (sent > 0.0).then(|| 100.0 * lost / sent)
    }

    /// The ring's minutes, newest first: `(minutes ago, sent, lost, worst window p99 in ns)`,
    /// leaving out minutes without probes (for the web page's edge history).
    #[must_use]
    pub fn history(&self, head: u32, now: Tick) -> Vec<(u32, u64, u64, Option<f64>)> {
        let cur = now / MINUTE_TICKS;
        let mut out = Vec::with_capacity(RING_MINUTES);
        for back in 0..RING_MINUTES as u32 {
            let Some(m) = cur.checked_sub(back) else {
                break;
            };
            if m > head || head - m >= RING_MINUTES as u32 {
                continue;
            }
            let i = (m as usize) % RING_MINUTES;
            let [sent, lost] = self.sent_lost[i];
            if sent > 0 {
                let p99 = (self.p99[i] > 0).then(|| coarse_value_ns(usize::from(self.p99[i] - 1)));
                out.push((back, u64::from(sent), u64::from(lost), p99));
            }
        }
        out
    }

    /// Worst report-window p99 over the ring, in nanoseconds.
    #[must_use]
    pub fn worst_p99_ns(&self, head: u32, now: Tick) -> Option<f64> {
        let cur = now / MINUTE_TICKS;
        let mut worst = 0u8;
        for back in 0..RING_MINUTES as u32 {
            let Some(m) = cur.checked_sub(back) else {
                break;
            };
            if m > head || head - m >= RING_MINUTES as u32 {
                continue;
            }
            worst = worst.max(self.p99[(m as usize) % RING_MINUTES]);
        }
        (worst > 0).then(|| coarse_value_ns(usize::from(worst - 1)))
    }
}

/// The minute a tick falls in.
#[must_use]
pub fn minute_of(t: Tick) -> u32 {
    t / MINUTE_TICKS
}

/// The fine bucket index of a histogram's p99 (0 when empty).
#[must_use]
pub fn p99_fine(h: &Histogram) -> u16 {
    h.quantile_ns(0.99)
        .map_or(0, |ns| bucket_index(ns as u64).max(1))
}

fn sat16(v: u64) -> u16 {
    v.min(u64::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hist(us: &[u64]) -> Histogram {
        let mut h = Histogram::new();
        for &u in us {
            h.record(Duration::from_micros(u));
        }
        h
    }

    #[test]
    fn sketch_quantiles_are_within_the_stated_error() {
        for us in [12u64, 50, 300, 1_000, 7_500, 40_000, 250_000, 450_000] {
            let mut s = RttSketch::default();
            s.merge(&hist(&[us; 10]));
            let got = quantile_ns(s.counts(), 0.5).expect("samples") / 1000.0;
            let err = (got - us as f64).abs() / us as f64;
            assert!(err <= SKETCH_RELATIVE_ERROR, "{us}us -> {got}us ({err})");
        }
    }

    #[test]
    fn sketch_p99_sees_the_tail() {
        let mut samples = vec![100u64; 990];
        samples.extend([20_000u64; 10]);
        let mut s = RttSketch::default();
        s.merge(&hist(&samples));
        let p50 = quantile_ns(s.counts(), 0.5).expect("samples") / 1000.0;
        let p999 = quantile_ns(s.counts(), 0.999).expect("samples") / 1000.0;
        assert!((85.0..=117.0).contains(&p50), "{p50}");
        assert!((16_600.0..=23_400.0).contains(&p999), "{p999}");
    }

    #[test]
    fn sketch_halves_instead_of_overflowing_and_keeps_proportions() {
        let mut s = RttSketch::default();
        // 3:1 between two buckets, far past what a u8 holds.
        let mut samples = vec![100u64; 30_000];
        samples.extend([1_000u64; 10_000]);
        let h = hist(&samples);
        s.merge(&h);
        s.merge(&h);
        let hi = s.counts()[coarse_of(bucket_index(100_000))];
        let lo = s.counts()[coarse_of(bucket_index(1_000_000))];
        assert!(hi >= 128, "{hi}");
        assert!(
            (2.8..=3.2).contains(&(f64::from(hi) / f64::from(lo))),
            "{hi}:{lo}"
        );
        let p50 = quantile_ns(s.counts(), 0.5).expect("samples") / 1000.0;
        let p90 = quantile_ns(s.counts(), 0.9).expect("samples") / 1000.0;
        assert!((91.0..=109.0).contains(&p50), "{p50}");
        assert!((910.0..=1_090.0).contains(&p90), "{p90}");
    }

    #[test]
    fn a_two_millisecond_shift_is_visible_to_a_fifth_of_a_millisecond() {
        for base_us in [30u64, 50, 80, 120] {
            let mut before = RttSketch::default();
            before.merge(&hist(&[base_us; 100]));
            let mut after = RttSketch::default();
            after.merge(&hist(&[base_us + 2_000; 100]));
            let shift = (quantile_ns(after.counts(), 0.5).expect("after")
                - quantile_ns(before.counts(), 0.5).expect("before"))
                / 1000.0;
            assert!(
                (shift - 2_000.0).abs() <= 300.0,
                "{base_us}us: shift {shift}us"
            );
        }
    }

    #[test]
    fn loss_ring_windows() {
        let mut ring = LossRing::default();
        let mut head = 0;
        // minute 0: 100 sent 10 lost; minute 5: 100 sent 0 lost.
        ring.record(&mut head, 0, 100, 10, 0);
        ring.record(&mut head, 5, 100, 0, 0);
        let now = 5 * MINUTE_TICKS + MINUTE_TICKS / 2;
        assert_eq!(ring.loss_pct(head, now, 1), Some(0.0));
        let l10 = ring.loss_pct(head, now, 9).expect("data");
        assert!((l10 - 5.0).abs() < 1e-9, "{l10}");
        // eleven minutes later minute 0 fell out of the ring.
        ring.record(&mut head, 11, 10, 10, 0);
        let l = ring.loss_pct(head, 11 * MINUTE_TICKS, 9).expect("data");
        assert!((l - 100.0 * 10.0 / 110.0).abs() < 1e-9, "{l}");
    }

    #[test]
    fn ring_keeps_worst_p99() {
        let mut ring = LossRing::default();
        let mut head = 0;
        ring.record(&mut head, 0, 1, 0, 300);
        ring.record(&mut head, 1, 1, 0, 200);
        assert_eq!(
            ring.worst_p99_ns(head, MINUTE_TICKS),
            Some(coarse_value_ns(coarse_of(300)))
        );
        assert_eq!(ring.worst_p99_ns(head, 11 * MINUTE_TICKS), None);
    }
}
