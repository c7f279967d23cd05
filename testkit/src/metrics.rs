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

/// The value of the first sample whose line starts with `series` (the name and labels as
/// exported, e.g. `foo_total{reason="x"}`).
///
/// # Panics
///
/// When no such sample has a value of type `T`; the message holds the whole text.
#[must_use]
pub fn sample<T: std::str::FromStr>(text: &str, series: &str) -> T {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[cfg(test)]
mod tests {
    use super::{sample, series_count};

    #[test]
    fn counts_sample_lines_only() {
        let text = "# HELP a x\n# TYPE a gauge\na 1\n\na{b=\"c\"} 2\n# EOF\n";
        assert_eq!(series_count(text), 2);
        assert_eq!(series_count(""), 0);
    }

    #[test]
    fn a_sample_is_read_by_its_name_and_labels() {
        let text = "# TYPE a counter\na_total{b=\"c\"} 2\na_total{b=\"d\"} 3.5\n";
        assert_eq!(sample::<u64>(text, r#"a_total{b="c"}"#), 2);
        assert!((sample::<f64>(text, r#"a_total{b="d"} "#) - 3.5).abs() < f64::EPSILON);
    }

    #[test]
    #[should_panic(expected = "no a_total{b=\"e\"} in")]
    fn a_missing_sample_names_the_series() {
        let _: u64 = sample("a_total{b=\"c\"} 2\n", r#"a_total{b="e"}"#);
    }
}
