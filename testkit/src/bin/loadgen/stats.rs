//! Percentiles of the latencies the runs collect.
//!
//! Exact (sorted) rather than sketched: a run keeps at most a few million samples, and a figure in
//! the benchmark table should not carry the error of a sketch on top.

/// The `q` quantile (0..=1) of `v`, sorting it in place; 0 for no samples.
pub(crate) fn pct(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    f64::from(v[i])
}
