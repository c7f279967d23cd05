//! A mergeable log-bucket histogram for round-trip times.
//!
//! Why this shape: percentiles must be exact enough to alarm on (p99 within a few percent), cheap to
//! record at 100k samples/s, small on the wire, and *mergeable*: the aggregator adds up many agents'
//! windows and the merged quantiles must be as good as if one process had seen every sample. A
//! log-bucketed sketch (as in DDSketch) gives all of that: bucket `i` covers
//! `(MIN·γ^(i-1), MIN·γ^i]` with `γ = (1+α)/(1-α)`, and reporting the bucket's harmonic midpoint is
//! within relative error `α` of every value in it. Merging is adding counts of equal indices, which
//! is exact.
//!
//! Buckets are stored sparsely (sorted `(index, count)` pairs) because RTTs cluster: a healthy path
//! fills a handful of buckets, so a histogram is usually a few dozen bytes, and it can never exceed
//! [`BUCKETS`] entries.

use std::time::Duration;

/// Relative accuracy of every quantile estimate (1%, half the 2% the product promises).
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Values at or below this many nanoseconds share the lowest bucket.
pub const MIN_NS: u64 = 100;
/// Values at or above this many nanoseconds (100 s) share the highest bucket.
pub const MAX_NS: u64 = 100_000_000_000;

const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

/// Number of buckets: enough for `MIN_NS ..= MAX_NS` at [`RELATIVE_ACCURACY`].
pub const BUCKETS: usize = 1038;

/// Why a histogram received from the wire was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HistogramError {
    /// A bucket index past [`BUCKETS`].
    #[error("histogram bucket index {0} out of range (max {max})", max = BUCKETS - 1)]
    IndexOutOfRange(u32),
    /// Indices must be strictly increasing so a histogram has one canonical form.
    #[error("histogram bucket indices are not strictly increasing at index {0}")]
    NotSorted(u32),
    /// Zero counts carry no information and are never produced by [`Histogram::bins`].
    #[error("histogram bucket {0} has a zero count")]
    ZeroCount(u32),
    /// Index and count lists must pair up.
    #[error("histogram has {indices} indices but {counts} counts")]
    LengthMismatch {
        /// Number of indices received.
        indices: usize,
        /// Number of counts received.
        counts: usize,
    },
    /// The summary fields disagree with the buckets.
    #[error("histogram summary is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// What [`Histogram::check_parts`] found in a valid wire histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Number of samples (the sum of the counts).
    pub count: u64,
    /// Sum of the samples in nanoseconds.
    pub sum_ns: u64,
    /// Smallest sample in nanoseconds (0 when empty).
    pub min_ns: u64,
    /// Largest sample in nanoseconds (0 when empty).
    pub max_ns: u64,
}

/// A sparse log-bucket histogram of durations with exact count, sum, min and max.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Sorted by index, no zero counts.
    bins: Vec<(u16, u32)>,
    count: u64,
    sum_ns: u64,
    min_ns: u64,
    max_ns: u64,
}

/// The bucket a value of `ns` nanoseconds falls into.
#[must_use]
pub fn bucket_index(ns: u64) -> u16 {
    if ns <= MIN_NS {
        return 0;
    }
    let ns = ns.min(MAX_NS);
    let idx = ((ns as f64 / MIN_NS as f64).ln() / GAMMA.ln()).ceil();
    // Float rounding may push an exact bucket bound one past; clamp keeps it in range.
    (idx as usize).min(BUCKETS - 1) as u16
}

/// The value reported for bucket `index`: within [`RELATIVE_ACCURACY`] of every value it holds.
#[must_use]
pub fn bucket_value_ns(index: u16) -> f64 {
    if index == 0 {
        return MIN_NS as f64;
    }
    MIN_NS as f64 * GAMMA.powi(i32::from(index)) * 2.0 / (GAMMA + 1.0)
}

impl Histogram {
    /// An empty histogram.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            bins: Vec::new(),
            count: 0,
            sum_ns: 0,
            min_ns: 0,
            max_ns: 0,
        }
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one value in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        let idx = bucket_index(ns);
        match self.bins.binary_search_by_key(&idx, |b| b.0) {
            Ok(i) => self.bins[i].1 = self.bins[i].1.saturating_add(1),
            Err(i) => self.bins.insert(i, (idx, 1)),
        }
        if self.count == 0 {
            self.min_ns = ns;
            self.max_ns = ns;
        } else {
            self.min_ns = self.min_ns.min(ns);
            self.max_ns = self.max_ns.max(ns);
        }
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Adds every sample of `other` to `self`; the result is exactly the histogram of both sample sets.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.clone_from(other);
            return;
        }
        let mut merged = Vec::with_capacity(self.bins.len().max(other.bins.len()));
        let (mut a, mut b) = (self.bins.iter().peekable(), other.bins.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(ia, ca)), Some(&&(ib, cb))) => {
                    if ia == ib {
                        merged.push((ia, ca.saturating_add(cb)));
                        a.next();
                        b.next();
                    } else if ia < ib {
                        merged.push((ia, ca));
                        a.next();
                    } else {
                        merged.push((ib, cb));
                        b.next();
                    }
                }
                (Some(&&x), None) => {
                    merged.push(x);
                    a.next();
                }
                (None, Some(&&x)) => {
                    merged.push(x);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.bins = merged;
        self.count += other.count;
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// Forgets every sample, keeping the allocation.
    pub fn clear(&mut self) {
        self.bins.clear();
        self.count = 0;
        self.sum_ns = 0;
        self.min_ns = 0;
        self.max_ns = 0;
    }

    /// Number of samples.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True when nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Exact smallest sample.
    #[must_use]
    pub fn min(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_nanos(self.min_ns))
    }

    /// Exact largest sample.
    #[must_use]
    pub fn max(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_nanos(self.max_ns))
    }

    /// Exact sum of all samples in nanoseconds (saturating).
    #[must_use]
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    /// Exact mean of the samples.
    #[must_use]
    pub fn mean(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_nanos(self.sum_ns / self.count))
    }

    /// The `q`-quantile (`0.0..=1.0`) within [`RELATIVE_ACCURACY`]; `None` when empty or `q` is not a
    /// number in range.
    ///
    /// The rank is `⌊q·(n-1)⌋` (the lower nearest rank), and the answer is clamped to the exact
    /// min and max so `quantile(0.0)` and `quantile(1.0)` are exact.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        self.quantile_ns(q)
            .map(|ns| Duration::from_nanos(ns.round() as u64))
    }

    /// [`Histogram::quantile`] in nanoseconds as a float.
    #[must_use]
    pub fn quantile_ns(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = nearest_rank(q, self.count);
        // The smallest and the largest sample are known exactly; a bucket's representative would
        // put them up to 1% off (a p99 of 5 samples printed below their max).
        if rank == 0 {
            return Some(self.min_ns as f64);
        }
        if rank == self.count - 1 {
            return Some(self.max_ns as f64);
        }
        let mut seen = 0u64;
        for &(idx, c) in &self.bins {
            seen += u64::from(c);
            if seen > rank {
                let v = bucket_value_ns(idx);
                return Some(v.clamp(self.min_ns as f64, self.max_ns as f64));
            }
        }
        Some(self.max_ns as f64)
    }

    /// The non-empty buckets as `(index, count)`, sorted by index: the wire form.
    #[must_use]
    pub fn bins(&self) -> &[(u16, u32)] {
        &self.bins
    }

    /// Approximate heap bytes held.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<(u16, u32)>()
    }

    /// Checks a histogram's wire form without allocating: the one validation every reader of a
    /// wire histogram applies, so the agent-side type and the aggregator's store refuse the same
    /// input for the same reason.
    ///
    /// # Errors
    /// Anything [`Histogram::bins`] could not have produced: mismatched lists, an index out of
    /// range or out of order, a zero count, min above max, or an empty histogram with a summary.
    pub fn check_parts(
        indices: &[u32],
        counts: &[u32],
        sum_ns: u64,
        min_ns: u64,
        max_ns: u64,
    ) -> Result<Summary, HistogramError> {
        if indices.len() != counts.len() {
            return Err(HistogramError::LengthMismatch {
                indices: indices.len(),
                counts: counts.len(),
            });
        }
        let mut count = 0u64;
        let mut prev: Option<u32> = None;
        for (&i, &c) in indices.iter().zip(counts) {
            if i as usize >= BUCKETS {
                return Err(HistogramError::IndexOutOfRange(i));
            }
            if prev.is_some_and(|p| i <= p) {
                return Err(HistogramError::NotSorted(i));
            }
            if c == 0 {
                return Err(HistogramError::ZeroCount(i));
            }
            prev = Some(i);
            count += u64::from(c);
        }
        if count > 0 && min_ns > max_ns {
            return Err(HistogramError::Inconsistent("min is greater than max"));
        }
        if count == 0 && (sum_ns != 0 || min_ns != 0 || max_ns != 0) {
            return Err(HistogramError::Inconsistent(
                "empty histogram with a non-zero summary",
            ));
        }
        Ok(Summary {
            count,
            sum_ns,
            min_ns,
            max_ns,
        })
    }

    /// Rebuilds a histogram from its wire form, refusing anything [`Histogram::bins`] could not have
    /// produced (see [`Histogram::check_parts`]).
    ///
    /// # Errors
    /// As [`Histogram::check_parts`].
    pub fn from_parts(
        indices: &[u32],
        counts: &[u32],
        sum_ns: u64,
        min_ns: u64,
        max_ns: u64,
    ) -> Result<Self, HistogramError> {
        let summary = Self::check_parts(indices, counts, sum_ns, min_ns, max_ns)?;
        // check_parts verified every index is below BUCKETS, so it fits a u16.
        let bins = indices
            .iter()
            .zip(counts)
            .map(|(&i, &c)| (i as u16, c))
            .collect();
        Ok(Self {
            bins,
            count: summary.count,
            sum_ns: summary.sum_ns,
            min_ns: summary.min_ns,
            max_ns: summary.max_ns,
        })
    }
}

/// The 0-based rank of quantile `q` among `n > 0` samples by the nearest-rank rule: the smallest
/// sample with at least `q·n` samples at or below it. So p99 of 5 samples is the largest (never
/// below the maximum a user sees beside it), p50 of 5 the third, p99 of 100 the 99th. Every
/// percentile echomesh prints, agent or aggregator, ranks this way.
#[must_use]
pub fn nearest_rank(q: f64, n: u64) -> u64 {
    let want = (q.clamp(0.0, 1.0) * n as f64).ceil() as u64;
    want.clamp(1, n.max(1)) - 1
}

#[cfg(test)]
mod tests;
