//! Reading the aggregator's `/metrics` text in tests.
//!
//! Cardinality is a promise the aggregator makes (bounded series whatever the cluster size), so
//! tests count series; the counting lives here, not in the production exporter.

/// The number of series (sample lines) in Prometheus/OpenMetrics text: every line that is not
/// empty and not a `#` comment.
#[must_use]
pub fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

#[cfg(test)]
mod tests {
    use super::series_count;

    #[test]
    fn counts_sample_lines_only() {
        let text = "# HELP a x\n# TYPE a gauge\na 1\n\na{b=\"c\"} 2\n# EOF\n";
        assert_eq!(series_count(text), 2);
        assert_eq!(series_count(""), 0);
    }
}
