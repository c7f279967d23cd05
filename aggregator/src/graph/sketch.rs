//! The fixed-size per-edge RTT sketch: 2 % relative error in 81 bytes.
//!
//! Why not keep the agents' [`Histogram`]: it is sparse and exact to 1 %, but a merged histogram
//! can hold up to 1038 buckets, and the aggregator must hold millions of edges in memory. So each
//! edge keeps a DDSketch-style log sketch whose buckets are unions of two agent buckets:
//!
//! - **Buckets.** Sketch bucket `k` covers agent buckets `WIRE_BASE + 2k` and `WIRE_BASE + 2k + 1`,
//!   i.e. `(MIN·γ^(w-1), MIN·γ^(w+1)]` with the agent's `γ = 1.01/0.99`. Reporting the harmonic
//!   middle of that range is within `(γ²−1)/(γ²+1) = 1.9998 %` of every value in it, so a quantile
//!   is within [`SKETCH_RELATIVE_ERROR`] (2 %) of the exact sample quantile. Aligning with the
//!   agent's buckets matters: a sketch bucket that split an agent bucket would add the agent's 1 %
//!   on top. The bucket space ([`SKETCH_BUCKETS`] = 300) runs from ~9 µs to ~1.4 s; values outside
//!   clamp to the end buckets.
//! - **A sliding window of [`WINDOW_BUCKETS`] (53) counters.** 300 counters would not fit a record;
//!   RTTs of one edge cluster, so the sketch keeps 53 consecutive buckets (a span of
//!   γ^106 ≈ 8.3×) starting at `lo`. A value above the window slides it up and the buckets that
//!   fall off the bottom are added into the new lowest bucket (collapsed); a value below it slides
//!   it down if everything held still fits, else it is counted in the lowest bucket. So the upper
//!   quantiles (p90, p99, p99.9: what alarms read) stay within 2 %, and a quantile is only wrong
//!   when it lies more than ~8.3× below the largest recent sample: then it reads as the lowest
//!   bucket's value, too high. With p99.9 at most 8.3× the p50, all four stay within 2 %.
//!   Two exceptions keep a single spike from wrecking the median: a value above the window that
//!   is beyond the p99.9 (with the values clamped before it, at most 0.1 % of the samples, counted
//!   in a 4-bit counter) while sliding would collapse the median is counted in the top bucket
//!   instead (it reads too low); and when only the lowest bucket holds anything and a value
//!   arrives a window below it, that mass was collapsed by a spike now decayed, and the window
//!   moves back to the new value, taking the mass along.
//! - **12-bit counters**, two in three bytes. Why not `u8`: the p99.9 needs the tail's share of the
//!   total to ~1/1000, which a fullest bucket of 255 cannot express; `u16` would cost 27 more
//!   bytes (13 fewer buckets, a 5.5× span). When a merge would overflow 4095, old and new counts are
//!   halved together before storing, which keeps the proportions.
//! - **Decay.** The owner halves the counts once per minute the clock passes, so the sketch
//!   describes roughly the last one to two minutes (a sample two minutes old weighs at most a
//!   quarter).
//!
//! Merging a report entry is, per agent bucket, an index computation, a range check and a 12-bit
//! add; the window only moves (a rewrite of 81 bytes) when the RTTs leave it.

use std::sync::LazyLock;

use echomesh_proto::Histogram;
use echomesh_proto::histogram::{MIN_NS, RELATIVE_ACCURACY};

/// Time in the graph: 10 ms ticks since the aggregator started (u32 lasts 497 days).
pub type Tick = u32;
/// Ticks per second.
pub const TICKS_PER_SEC: u32 = 100;
/// Buckets of the whole sketch space (an absolute bucket index is below this).
pub const SKETCH_BUCKETS: usize = 300;
/// Consecutive buckets one edge keeps (two counters share three bytes; the odd last one leaves
/// a nibble for the count of clamped spikes).
pub const WINDOW_BUCKETS: usize = 53;
/// Bound on the relative error of a sketch quantile inside the window (see the module docs).
pub const SKETCH_RELATIVE_ERROR: f64 = 0.02;
/// The agent bucket where sketch bucket 0 starts: values up to ~9 µs land in bucket 0.
const WIRE_BASE: u32 = 224;
/// Agent buckets per sketch bucket.
const WIRE_PER_BUCKET: u32 = 2;
/// Largest value of one 12-bit counter.
const COUNT_MAX: u64 = 4095;
/// Bytes of packed counters.
const PACKED: usize = WINDOW_BUCKETS.div_ceil(2) * 3 - 1;
// The clamped-spike counter lives in the last byte's high nibble.
const _: () = assert!(WINDOW_BUCKETS % 2 == 1);
// The window's lowest bucket is kept in a byte.
const _: () = assert!(SKETCH_BUCKETS - WINDOW_BUCKETS <= u8::MAX as usize);

const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

/// The sketch bucket of agent bucket `wire`.
#[must_use]
pub fn bucket_of_wire(wire: u32) -> usize {
    (wire.saturating_sub(WIRE_BASE) / WIRE_PER_BUCKET).min(SKETCH_BUCKETS as u32 - 1) as usize
}

/// The value of a union of `n` agent buckets starting at agent bucket `w0`: the harmonic middle of
/// `(MIN·γ^(w0-1), MIN·γ^(w0+n-1)]`, within `(γⁿ−1)/(γⁿ+1)` of every value in it.
fn union_value_ns(w0: u32, n: i32) -> f64 {
    let gn = GAMMA.powi(n);
    MIN_NS as f64 * GAMMA.powi(w0 as i32 - 1) * 2.0 * gn / (1.0 + gn)
}

static VALUES: LazyLock<[f64; SKETCH_BUCKETS]> = LazyLock::new(|| {
    std::array::from_fn(|c| union_value_ns(WIRE_BASE + WIRE_PER_BUCKET * c as u32, 2))
});

/// The value reported for sketch bucket `c`, in nanoseconds (within 2 % of every value in it).
#[must_use]
pub fn coarse_value_ns(c: usize) -> f64 {
    VALUES[c.min(SKETCH_BUCKETS - 1)]
}

/// A pair of sketch buckets as one byte (0 = none), for per-slot worst p99s: within 4 %.
#[must_use]
pub fn pair_code(bucket: usize) -> u8 {
    (bucket.min(SKETCH_BUCKETS - 1) / 2 + 1) as u8
}

/// The value of a [`pair_code`] in nanoseconds (`None` for 0).
#[must_use]
pub fn pair_value_ns(code: u8) -> Option<f64> {
    let pair = u32::from(code.checked_sub(1)?);
    Some(union_value_ns(WIRE_BASE + 2 * WIRE_PER_BUCKET * pair, 4))
}

/// A decaying RTT sketch of fixed size (81 bytes): 53 12-bit counters from bucket `lo` up and a
/// 4-bit count of spikes clamped into the top bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttSketch {
    lo: u8,
    packed: [u8; PACKED],
}

impl Default for RttSketch {
    fn default() -> Self {
        Self {
            lo: 0,
            packed: [0; PACKED],
        }
    }
}

impl RttSketch {
    /// Adds every sample of `h`.
    pub fn merge(&mut self, h: &Histogram) {
        let (indices, counts): (Vec<u32>, Vec<u32>) =
            h.bins().iter().map(|&(i, c)| (u32::from(i), c)).unzip();
        self.merge_wire(&indices, &counts);
    }

    /// Adds wire-form buckets that were already validated (sorted, in range, paired).
    pub fn merge_wire(&mut self, indices: &[u32], counts: &[u32]) {
        // A new or fully decayed sketch centres its window on the first value (no rewrite).
        if let Some(&first) = indices.first()
            && self.packed.iter().all(|&b| b == 0)
        {
            self.lo = centred(bucket_of_wire(first));
        }
        for (n, (&i, &c)) in indices.iter().zip(counts).enumerate() {
            let rel = bucket_of_wire(i).wrapping_sub(usize::from(self.lo));
            if rel < WINDOW_BUCKETS {
                let v = u64::from(self.get(rel)) + u64::from(c);
                if v <= COUNT_MAX {
                    self.set(rel, v as u16);
                    continue;
                }
            }
            self.merge_slow(&indices[n..], &counts[n..]);
            return;
        }
    }

    /// The general merge: moves the window and rescales as needed.
    fn merge_slow(&mut self, indices: &[u32], counts: &[u32]) {
        let mut wide = self.unpack().map(u64::from);
        let mut lo = usize::from(self.lo);
        let mut clamped = self.clamped();
        for (&i, &c) in indices.iter().zip(counts) {
            let mut k = bucket_of_wire(i);
            match wide.iter().rposition(|&n| n > 0) {
                None => {
                    lo = usize::from(centred(k));
                    clamped = 0;
                }
                Some(0) if k + WINDOW_BUCKETS <= lo => {
                    // Only the lowest bucket holds anything and the value is a window below it:
                    // that mass was collapsed there by an earlier slide up (or is stale). Follow
                    // the new value, taking that mass along, so a collapse does not outlive the
                    // sample that caused it.
                    let held = wide[0];
                    wide = [0; WINDOW_BUCKETS];
                    lo = usize::from(centred(k));
                    wide[k - lo] = held;
                    clamped = 0;
                }
                Some(top_rel) if k < lo => {
                    let top = lo + top_rel;
                    if top - k < WINDOW_BUCKETS {
                        // Slide down, keeping the newest-highest bucket inside with headroom.
                        let room = (WINDOW_BUCKETS - 1 - (top - k)) / 2;
                        let new_lo = k - room.min(k);
                        slide(&mut wide, lo, new_lo);
                        lo = new_lo;
                        clamped = 0;
                    } else {
                        k = lo; // too far below what the window holds: collapsed
                    }
                }
                Some(_) if k >= lo + WINDOW_BUCKETS => {
                    let new_lo = k + 1 - WINDOW_BUCKETS;
                    let total: u64 = wide.iter().sum::<u64>() + u64::from(c);
                    let below: u64 = wide[..(new_lo - lo).min(WINDOW_BUCKETS)].iter().sum();
                    let spikes = u64::from(clamped) + u64::from(c);
                    if spikes * 1000 <= total && below * 2 > total {
                        // A spike beyond the p99.9 that would collapse the median: counted in
                        // the top bucket instead (it reads too low; p50 to p99.9 stay exact).
                        // Once the spikes make 0.1 % of the samples the tail is real and the
                        // window follows it.
                        k = lo + WINDOW_BUCKETS - 1;
                        clamped = spikes.min(15) as u8;
                    } else {
                        slide(&mut wide, lo, new_lo);
                        lo = new_lo;
                        clamped = 0;
                    }
                }
                Some(_) => {}
            }
            wide[k - lo] += u64::from(c);
        }
        let max = wide.iter().copied().max().unwrap_or(0);
        let mut shift = 0;
        while (max >> shift) > COUNT_MAX {
            shift += 1;
        }
        self.lo = lo as u8;
        for (i, w) in wide.iter().enumerate() {
            self.set(i, (w >> shift) as u16);
        }
        self.set_clamped(clamped >> shift.min(7));
    }

    /// Halves every count (the decay step).
    pub fn halve(&mut self) {
        for i in 0..WINDOW_BUCKETS {
            self.set(i, self.get(i) >> 1);
        }
        self.set_clamped(self.clamped() >> 1);
    }

    /// Spikes counted in the top bucket since the window last moved (saturating at 15).
    fn clamped(&self) -> u8 {
        self.packed[PACKED - 1] >> 4
    }

    fn set_clamped(&mut self, n: u8) {
        self.packed[PACKED - 1] = (self.packed[PACKED - 1] & 0x0F) | (n.min(15) << 4);
    }

    /// Adds this sketch's counts into an accumulator over the whole bucket space (for node and
    /// cluster percentiles).
    pub fn add_to(&self, acc: &mut [u64; SKETCH_BUCKETS]) {
        let lo = usize::from(self.lo);
        for (i, c) in self.unpack().into_iter().enumerate() {
            acc[lo + i] += u64::from(c);
        }
    }

    /// The `q`-quantile in nanoseconds; `None` when empty or `q` is outside `0..=1`.
    #[must_use]
    pub fn quantile_ns(&self, q: f64) -> Option<f64> {
        let counts = self.unpack();
        quantile_in(&counts, q).map(|i| coarse_value_ns(usize::from(self.lo) + i))
    }

    /// The lowest bucket of the window.
    #[must_use]
    pub fn lo(&self) -> usize {
        usize::from(self.lo)
    }

    /// The window's counts, lowest bucket first.
    #[must_use]
    pub fn unpack(&self) -> [u16; WINDOW_BUCKETS] {
        std::array::from_fn(|i| self.get(i))
    }

    fn get(&self, i: usize) -> u16 {
        let j = i / 2 * 3;
        let b = u16::from(self.packed[j + 1]);
        if i.is_multiple_of(2) {
            u16::from(self.packed[j]) | (b & 0x0F) << 8
        } else {
            b >> 4 | u16::from(self.packed[j + 2]) << 4
        }
    }

    fn set(&mut self, i: usize, v: u16) {
        let j = i / 2 * 3;
        if i.is_multiple_of(2) {
            self.packed[j] = v as u8;
            self.packed[j + 1] = (self.packed[j + 1] & 0xF0) | ((v >> 8) as u8 & 0x0F);
        } else {
            self.packed[j + 1] = (self.packed[j + 1] & 0x0F) | ((v as u8 & 0x0F) << 4);
            self.packed[j + 2] = (v >> 4) as u8;
        }
    }
}

/// The lowest bucket of a window with `k` in its middle.
fn centred(k: usize) -> u8 {
    k.saturating_sub(WINDOW_BUCKETS / 2)
        .min(SKETCH_BUCKETS - WINDOW_BUCKETS) as u8
}

/// Re-bases window counts from `from` to `to`; buckets below `to` are added into the lowest.
fn slide(wide: &mut [u64; WINDOW_BUCKETS], from: usize, to: usize) {
    let mut out = [0u64; WINDOW_BUCKETS];
    for (i, &n) in wide.iter().enumerate() {
        let abs = from + i;
        let rel = abs.saturating_sub(to);
        if rel < WINDOW_BUCKETS {
            out[rel] += n;
        }
    }
    *wide = out;
}

/// The index of the nearest-rank `q`-quantile among `counts`.
fn quantile_in<T: Copy + Into<u64>>(counts: &[T], q: f64) -> Option<usize> {
    let total: u64 = counts.iter().map(|&c| c.into()).sum();
    if total == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = echomesh_proto::histogram::nearest_rank(q, total);
    let mut seen = 0;
    for (i, &c) in counts.iter().enumerate() {
        seen += c.into();
        if seen > rank {
            return Some(i);
        }
    }
    None
}

/// The `q`-quantile in nanoseconds of counts over the whole bucket space (as filled by
/// [`RttSketch::add_to`]); `None` when empty.
#[must_use]
pub fn quantile_ns<T: Copy + Into<u64>>(counts: &[T], q: f64) -> Option<f64> {
    quantile_in(counts, q).map(coarse_value_ns)
}

#[cfg(test)]
mod tests;
