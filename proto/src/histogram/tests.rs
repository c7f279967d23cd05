use super::*;
use proptest::prelude::*;

fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
    sorted[nearest_rank(q, sorted.len() as u64) as usize]
}

#[test]
fn empty_has_no_quantiles() {
    let h = Histogram::new();
    assert_eq!(h.quantile(0.5), None);
    assert_eq!(h.min(), None);
    assert_eq!(h.mean(), None);
}

#[test]
fn single_value_is_exact() {
    let mut h = Histogram::new();
    h.record(Duration::from_micros(250));
    for q in [0.0, 0.5, 0.99, 1.0] {
        assert_eq!(h.quantile(q), Some(Duration::from_micros(250)));
    }
}

#[test]
fn out_of_range_q_is_none() {
    let mut h = Histogram::new();
    h.record_ns(1000);
    assert_eq!(h.quantile(1.5), None);
    assert_eq!(h.quantile(f64::NAN), None);
}

#[test]
fn buckets_cover_the_full_range() {
    assert_eq!(bucket_index(0), 0);
    assert_eq!(bucket_index(MAX_NS) as usize, BUCKETS - 1);
    assert_eq!(bucket_index(u64::MAX) as usize, BUCKETS - 1);
    // Every bucket's value is within the accuracy of the values that map to it.
    for ns in [101u64, 1_000, 6_000, 123_456, 9_999_999, 1_000_000_000] {
        let v = bucket_value_ns(bucket_index(ns));
        assert!(
            ((v - ns as f64) / ns as f64).abs() <= RELATIVE_ACCURACY + 1e-9,
            "{ns} -> {v}"
        );
    }
}

#[test]
fn from_parts_refuses_malformed_input() {
    assert_eq!(
        Histogram::from_parts(&[1, 2], &[1], 0, 0, 0),
        Err(HistogramError::LengthMismatch {
            indices: 2,
            counts: 1
        })
    );
    assert_eq!(
        Histogram::from_parts(&[5, 5], &[1, 1], 2, 1, 1),
        Err(HistogramError::NotSorted(5))
    );
    assert_eq!(
        Histogram::from_parts(&[5000], &[1], 1, 1, 1),
        Err(HistogramError::IndexOutOfRange(5000))
    );
    assert_eq!(
        Histogram::from_parts(&[3], &[0], 1, 1, 1),
        Err(HistogramError::ZeroCount(3))
    );
    assert!(matches!(
        Histogram::from_parts(&[3], &[1], 1, 9, 1),
        Err(HistogramError::Inconsistent(_))
    ));
    assert!(matches!(
        Histogram::from_parts(&[], &[], 7, 0, 0),
        Err(HistogramError::Inconsistent(_))
    ));
}

#[test]
fn roundtrips_through_parts() {
    let mut h = Histogram::new();
    for ns in [5_000, 6_000, 6_100, 90_000, 2_000_000] {
        h.record_ns(ns);
    }
    let idx: Vec<u32> = h.bins().iter().map(|b| u32::from(b.0)).collect();
    let cnt: Vec<u32> = h.bins().iter().map(|b| b.1).collect();
    let back = Histogram::from_parts(&idx, &cnt, h.sum_ns(), 5_000, 2_000_000).expect("valid");
    assert_eq!(back, h);
}

#[test]
fn check_parts_summarises_what_from_parts_builds() {
    let s = Histogram::check_parts(&[3, 9], &[2, 5], 70, 5, 15).expect("valid");
    assert_eq!(
        s,
        Summary {
            count: 7,
            sum_ns: 70,
            min_ns: 5,
            max_ns: 15,
        }
    );
    let h = Histogram::from_parts(&[3, 9], &[2, 5], 70, 5, 15).expect("valid");
    assert_eq!(h.count(), s.count);
}

proptest! {
    #[test]
    fn quantiles_within_two_percent(values in prop::collection::vec(100u64..50_000_000_000, 1..2000),
                                    q in 0.0f64..=1.0) {
        let mut h = Histogram::new();
        for &v in &values { h.record_ns(v); }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let exact = exact_quantile(&sorted, q) as f64;
        let est = h.quantile_ns(q).expect("non-empty");
        prop_assert!(((est - exact) / exact).abs() <= 0.02, "q={q} exact={exact} est={est}");
    }

    #[test]
    fn merge_equals_recording_everything(a in prop::collection::vec(1u64..10_000_000, 0..500),
                                         b in prop::collection::vec(1u64..10_000_000, 0..500)) {
        let (mut ha, mut hb, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for &v in &a { ha.record_ns(v); all.record_ns(v); }
        for &v in &b { hb.record_ns(v); all.record_ns(v); }
        ha.merge(&hb);
        prop_assert_eq!(ha, all);
    }

    #[test]
    fn from_parts_never_panics(idx in prop::collection::vec(any::<u32>(), 0..20),
                               cnt in prop::collection::vec(any::<u32>(), 0..20),
                               s in any::<u64>(), lo in any::<u64>(), hi in any::<u64>()) {
        let _ = Histogram::from_parts(&idx, &cnt, s, lo, hi);
    }

    #[test]
    fn check_parts_and_from_parts_agree(idx in prop::collection::vec(0u32..1100, 0..12),
                                        cnt in prop::collection::vec(0u32..4, 0..12),
                                        s in 0u64..3, lo in 0u64..3, hi in 0u64..3) {
        let checked = Histogram::check_parts(&idx, &cnt, s, lo, hi).map(|x| x.count);
        let built = Histogram::from_parts(&idx, &cnt, s, lo, hi).map(|h| h.count());
        prop_assert_eq!(checked, built);
    }
}

#[test]
fn percentiles_use_the_nearest_rank() {
    assert_eq!(nearest_rank(0.99, 5), 4, "p99 of 5 samples is the largest");
    assert_eq!(nearest_rank(0.5, 5), 2);
    assert_eq!(nearest_rank(0.99, 100), 98);
    assert_eq!(nearest_rank(0.0, 7), 0);
    assert_eq!(nearest_rank(1.0, 7), 6);
    let mut h = Histogram::new();
    for us in [100u64, 200, 300, 400, 5_000] {
        h.record(Duration::from_micros(us));
    }
    let p99 = h.quantile(0.99).expect("samples");
    assert_eq!(
        p99,
        h.max().expect("max"),
        "p99 is never below the max of 5 samples"
    );
}
