//! Conversions between the wire `v1::Histogram` and [`Histogram`].
//!
//! The wire form is exactly [`Histogram::bins`] split into two packed lists plus the exact summary,
//! and the way back goes through [`Histogram::from_parts`], so a histogram from the network is
//! validated (sorted, in range, consistent) before anyone merges it.

use crate::{Histogram, HistogramError, v1};

impl From<&Histogram> for v1::Histogram {
    fn from(h: &Histogram) -> Self {
        let (indices, counts) = h.bins().iter().map(|&(i, c)| (u32::from(i), c)).unzip();
        Self {
            indices,
            counts,
            sum_ns: h.sum_ns(),
            min_ns: h.min().map_or(0, |d| d.as_nanos() as u64),
            max_ns: h.max().map_or(0, |d| d.as_nanos() as u64),
        }
    }
}

impl TryFrom<&v1::Histogram> for Histogram {
    type Error = HistogramError;

    fn try_from(h: &v1::Histogram) -> Result<Self, Self::Error> {
        Histogram::from_parts(&h.indices, &h.counts, h.sum_ns, h.min_ns, h.max_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histogram_round_trips_through_the_wire_form() {
        let mut h = Histogram::new();
        for us in [50u64, 51, 120, 900, 900, 15_000] {
            h.record(Duration::from_micros(us));
        }
        let wire = v1::Histogram::from(&h);
        assert_eq!(wire.indices.len(), h.bins().len());
        let back = Histogram::try_from(&wire).expect("valid");
        assert_eq!(back, h);
    }

    #[test]
    fn empty_histogram_round_trips() {
        let h = Histogram::new();
        let back = Histogram::try_from(&v1::Histogram::from(&h)).expect("valid");
        assert!(back.is_empty());
    }

    #[test]
    fn unsorted_wire_histogram_is_refused() {
        let wire = v1::Histogram {
            indices: vec![5, 3],
            counts: vec![1, 1],
            sum_ns: 10,
            min_ns: 1,
            max_ns: 9,
        };
        assert_eq!(
            Histogram::try_from(&wire),
            Err(HistogramError::NotSorted(3))
        );
    }
}
