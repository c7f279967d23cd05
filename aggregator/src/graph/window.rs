//! Per-edge loss windows that slide over slots, so a step change is fully reflected one window
//! after it happened.
//!
//! Why slots of a fifth of the window: a window is the current slot plus the four before it, so
//! it covers the last 80–100 % of its length and starts after `now − length`. Whatever happened
//! before that is out, exactly: a loss that began (or ended) at `t` is the whole window from
//! `t + length` on. The former per-minute ring weighted the minute before by what was left of it,
//! which mixed a step with the minute before for up to two minutes.
//!
//! Three windows, each five `(sent, lost)` slots in `u16` (65 bytes with the long window's p99s):
//!
//! | window | slot | covers |
//! |---|---|---|
//! | [`Span::Short`] (10 s) | 2 s | 8–10 s |
//! | [`Span::Minute`] (1 min) | 12 s | 48–60 s |
//! | [`Span::Long`] (10 min) | 2 min | 8–10 min, plus the worst report p99 per slot (4 %) |
//!
//! Merges land in the slot of their arrival time. A slot holds up to 65 535 probes, so the long
//! window is exact up to ~540 probes per second per edge (beyond, it saturates and under-reads).

use super::sketch::{TICKS_PER_SEC, Tick, pair_value_ns};

/// Slots per window.
pub const SLOTS: usize = 5;

/// Which loss window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// The last 10 seconds (2 s slots).
    Short,
    /// The last minute (12 s slots).
    Minute,
    /// The last ten minutes (2 min slots).
    Long,
}

impl Span {
    /// Ticks per slot.
    #[must_use]
    pub const fn slot_ticks(self) -> u32 {
        match self {
            Span::Short => 2 * TICKS_PER_SEC,
            Span::Minute => 12 * TICKS_PER_SEC,
            Span::Long => 120 * TICKS_PER_SEC,
        }
    }
}

/// Five `(sent, lost)` slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Ring {
    slots: [[u16; 2]; SLOTS],
}

impl Ring {
    /// Adds a window at `now` to a ring whose newest merge was at `head`; returns the slot index.
    fn record(&mut self, len: u32, head: Tick, now: Tick, sent: u16, lost: u16) -> Option<usize> {
        let (h, s) = (head / len, now / len);
        if s > h {
            for k in 1..=(s - h).min(SLOTS as u32) {
                self.slots[((h + k) as usize) % SLOTS] = [0, 0];
            }
        } else if h - s >= SLOTS as u32 {
            return None; // older than the ring (cannot happen with a monotonic clock)
        }
        let i = (s as usize) % SLOTS;
        let sl = &mut self.slots[i];
        sl[0] = sl[0].saturating_add(sent);
        sl[1] = sl[1].saturating_add(lost);
        Some(i)
    }

    /// The slots inside the window ending at `now`, newest first: `(slots ago, index)`.
    fn live(len: u32, head: Tick, now: Tick) -> impl Iterator<Item = (u32, usize)> {
        let (h, cur) = (head / len, now / len);
        (0..SLOTS as u32).filter_map(move |back| {
            let m = cur.checked_sub(back)?;
            (m <= h && h - m < SLOTS as u32).then_some((back, (m as usize) % SLOTS))
        })
    }

    fn sums(&self, len: u32, head: Tick, now: Tick) -> (u64, u64) {
        Self::live(len, head, now).fold((0, 0), |(s, l), (_, i)| {
            let [a, b] = self.slots[i];
            (s + u64::from(a), l + u64::from(b))
        })
    }
}

/// The three loss windows of one edge (65 bytes, no heap). The tick of the newest merge is kept
/// by the owner and passed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossWindows {
    short: Ring,
    minute: Ring,
    long: Ring,
    /// Worst report p99 per long slot as a [`super::sketch::pair_code`] (0 = none).
    long_p99: [u8; SLOTS],
}

impl LossWindows {
    /// Adds one report window that arrived at `now`; `head` is the previous merge's tick.
    pub fn record(&mut self, head: Tick, now: Tick, sent: u64, lost: u64, p99_code: u8) {
        let (sent, lost) = (sat16(sent), sat16(lost));
        self.short
            .record(Span::Short.slot_ticks(), head, now, sent, lost);
        self.minute
            .record(Span::Minute.slot_ticks(), head, now, sent, lost);
        let len = Span::Long.slot_ticks();
        let (h, s) = (head / len, now / len);
        for k in 1..=s.saturating_sub(h).min(SLOTS as u32) {
            self.long_p99[((h + k) as usize) % SLOTS] = 0;
        }
        if let Some(i) = self.long.record(len, head, now, sent, lost) {
            self.long_p99[i] = self.long_p99[i].max(p99_code);
        }
    }

    /// Loss in percent over `span` at `now`; `None` without probes in it.
    #[must_use]
    pub fn loss_pct(&self, span: Span, head: Tick, now: Tick) -> Option<f64> {
        let ring = match span {
            Span::Short => &self.short,
            Span::Minute => &self.minute,
            Span::Long => &self.long,
        };
        let (sent, lost) = ring.sums(span.slot_ticks(), head, now);
        (sent > 0).then(|| 100.0 * lost as f64 / sent as f64)
    }

    /// The long window's slots, newest first: `(minutes ago, sent, lost, worst p99 in ns)`,
    /// leaving out slots without probes (for the web page's edge history).
    #[must_use]
    pub fn history(&self, head: Tick, now: Tick) -> Vec<(u32, u64, u64, Option<f64>)> {
        let len = Span::Long.slot_ticks();
        let minutes_per_slot = len / (60 * TICKS_PER_SEC);
        Ring::live(len, head, now)
            .filter_map(|(back, i)| {
                let [sent, lost] = self.long.slots[i];
                (sent > 0).then(|| {
                    (
                        back * minutes_per_slot,
                        u64::from(sent),
                        u64::from(lost),
                        pair_value_ns(self.long_p99[i]),
                    )
                })
            })
            .collect()
    }

    /// Worst report p99 over the long window, in nanoseconds.
    #[must_use]
    pub fn worst_p99_ns(&self, head: Tick, now: Tick) -> Option<f64> {
        let worst = Ring::live(Span::Long.slot_ticks(), head, now)
            .map(|(_, i)| self.long_p99[i])
            .max()
            .unwrap_or(0);
        pair_value_ns(worst)
    }
}

fn sat16(v: u64) -> u16 {
    v.min(u64::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests;
