//! The sketch's error bound against exact quantiles, its window, its counters and its size.

use super::*;
use echomesh_proto::histogram::nearest_rank;
use std::time::Duration;

/// A small deterministic generator (splitmix64), so the distributions are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Feeds `samples` (ns) to a sketch as agents do: one 1 %-histogram per report of 100 samples.
fn sketch_of(samples: &[u64]) -> RttSketch {
    let mut s = RttSketch::default();
    for chunk in samples.chunks(100) {
        let mut h = Histogram::new();
        for &ns in chunk {
            h.record_ns(ns);
        }
        s.merge(&h);
    }
    s
}

/// Worst relative error of the four quantiles against the exact nearest-rank quantiles.
fn worst_error(samples: &[u64]) -> f64 {
    let s = sketch_of(samples);
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    QUANTILES
        .iter()
        .map(|&q| {
            let exact = sorted[nearest_rank(q, sorted.len() as u64) as usize] as f64;
            let got = s.quantile_ns(q).expect("samples");
            (got - exact).abs() / exact
        })
        .fold(0.0, f64::max)
}

/// 20 000 samples of each shape, placed at medians from 12 µs to 400 ms.
fn distributions() -> Vec<(String, Vec<u64>)> {
    let mut rng = Rng(7);
    let mut out = Vec::new();
    for median_us in [
        12.0, 40.0, 150.0, 600.0, 2_500.0, 10_000.0, 60_000.0, 250_000.0,
    ] {
        let m = median_us * 1000.0;
        let n = 20_000;
        let uniform = (0..n)
            .map(|_| (m * (0.6 + 0.8 * rng.unit())) as u64)
            .collect();
        let lognormal = (0..n)
            .map(|_| (m * (0.35 * rng.normal()).exp()) as u64)
            .collect();
        let bimodal = (0..n)
            .map(|_| {
                let mode = if rng.unit() < 0.8 { m } else { 3.0 * m };
                (mode * (0.08 * rng.normal()).exp()) as u64
            })
            .collect();
        out.push((format!("uniform {median_us} us"), uniform));
        out.push((format!("lognormal {median_us} us"), lognormal));
        out.push((format!("bimodal {median_us} us"), bimodal));
    }
    out
}

#[test]
fn quantiles_are_within_two_percent_of_exact_from_10us_to_1s() {
    let mut worst = 0.0f64;
    for (name, samples) in distributions() {
        let err = worst_error(&samples);
        println!(
            "{name:>22}: worst of p50/p90/p99/p99.9 {:.3} %",
            err * 100.0
        );
        assert!(
            err <= SKETCH_RELATIVE_ERROR + 1e-9,
            "{name}: {:.4} %",
            err * 100.0
        );
        worst = worst.max(err);
    }
    println!(
        "worst {:.3} %; sketch {} bytes ({} buckets of 12 bits, span {:.1}x), edge record {} bytes",
        worst * 100.0,
        std::mem::size_of::<RttSketch>(),
        WINDOW_BUCKETS,
        coarse_value_ns(WINDOW_BUCKETS) / coarse_value_ns(0),
        std::mem::size_of::<crate::graph::EdgeRecord>()
    );
}

#[test]
fn every_bucket_value_is_within_the_bound_of_its_range() {
    // Each sketch bucket's range ends where the agent's 1 % buckets end.
    for c in 1..SKETCH_BUCKETS - 1 {
        let w = WIRE_BASE + WIRE_PER_BUCKET * c as u32;
        let lo = MIN_NS as f64 * GAMMA.powi(w as i32 - 1);
        let hi = MIN_NS as f64 * GAMMA.powi(w as i32 + 1);
        let v = coarse_value_ns(c);
        assert!((v - lo) / lo <= SKETCH_RELATIVE_ERROR, "{c}");
        assert!((hi - v) / hi <= SKETCH_RELATIVE_ERROR, "{c}");
    }
    assert!(coarse_value_ns(0) < 10_000.0);
    assert!(coarse_value_ns(SKETCH_BUCKETS - 1) > 1e9);
}

#[test]
fn upper_quantiles_stay_exact_when_the_spread_exceeds_the_window() {
    // p50 at 100 µs, 1 % at 5 ms: 50x apart, more than the window spans.
    let mut samples = vec![100_000u64; 9_900];
    samples.extend(vec![5_000_000u64; 100]);
    let s = sketch_of(&samples);
    for q in [0.995, 0.999] {
        let got = s.quantile_ns(q).expect("samples");
        assert!(
            (got - 5e6).abs() / 5e6 <= SKETCH_RELATIVE_ERROR,
            "{q}: {got}"
        );
    }
    // The p50 was collapsed into the window's lowest bucket: it reads too high, never too low.
    let p50 = s.quantile_ns(0.5).expect("samples");
    assert!(p50 > 100_000.0 * 1.02, "{p50}");
    assert!(p50 <= 5e6 / 8.0, "{p50}");
}

/// The exact nearest-rank quantiles of `samples`.
fn exact(samples: &[u64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted[nearest_rank(q, sorted.len() as u64) as usize] as f64
}

#[test]
fn a_rare_spike_does_not_collapse_the_median() {
    let mut rng = Rng(11);
    let mut samples: Vec<u64> = (0..5_000)
        .map(|_| (100_000.0 * (0.2 * rng.normal()).exp()) as u64)
        .collect();
    samples[2_550] = 400_000_000; // one 400 ms reply among 100 µs ones
    let s = sketch_of(&samples);
    for q in QUANTILES {
        let want = exact(&samples, q);
        let got = s.quantile_ns(q).expect("samples");
        assert!(
            (got - want).abs() / want <= SKETCH_RELATIVE_ERROR,
            "{q}: {got} vs {want}"
        );
    }
}

#[test]
fn a_far_tail_of_more_than_a_thousandth_is_followed() {
    // 0.3 % of the replies at 50x the median: the p99.9 lies in that tail.
    let samples: Vec<u64> = (0..10_000)
        .map(|i| if i % 333 == 0 { 5_000_000 } else { 100_000 })
        .collect();
    let s = sketch_of(&samples);
    let p999 = s.quantile_ns(0.999).expect("samples");
    assert!((p999 - 5e6).abs() / 5e6 <= SKETCH_RELATIVE_ERROR, "{p999}");
}

#[test]
fn a_collapse_caused_by_a_first_report_spike_is_undone_after_the_spike_decays() {
    let mut s = RttSketch::default();
    let mut first = vec![100u64; 9];
    first.push(400_000);
    s.merge(&hist_us(&first));
    s.merge(&hist_us(&[100; 50]));
    // The spike moved the window: the median is collapsed into its lowest bucket.
    assert!(s.quantile_ns(0.5).expect("samples") > 1e6);
    // A minute later the spike's count has decayed to 0; the next report moves the window back.
    s.halve();
    s.merge(&hist_us(&[100; 50]));
    let p50 = s.quantile_ns(0.5).expect("samples");
    assert!((p50 - 1e5).abs() / 1e5 <= SKETCH_RELATIVE_ERROR, "{p50}");
}

#[test]
fn the_window_slides_down_when_everything_fits() {
    let mut s = sketch_of(&[1_000_000; 10]);
    let before = s.lo();
    s.merge(&hist_us(&[300; 10])); // 3.3x below: fits with the 1 ms samples
    assert!(s.lo() < before);
    let p10 = s.quantile_ns(0.1).expect("samples");
    assert!(
        (p10 - 300_000.0).abs() / 300_000.0 <= SKETCH_RELATIVE_ERROR,
        "{p10}"
    );
    let p90 = s.quantile_ns(0.9).expect("samples");
    assert!((p90 - 1e6).abs() / 1e6 <= SKETCH_RELATIVE_ERROR, "{p90}");
}

fn hist_us(us: &[u64]) -> Histogram {
    let mut h = Histogram::new();
    for &u in us {
        h.record(Duration::from_micros(u));
    }
    h
}

#[test]
fn overflow_halves_old_and_new_together_and_keeps_proportions() {
    let mut s = RttSketch::default();
    // 3:1 between two buckets, far past what 12 bits hold.
    let mut samples = vec![100u64; 30_000];
    samples.extend([500u64; 10_000]);
    let h = hist_us(&samples);
    s.merge(&h);
    s.merge(&h);
    let counts = s.unpack();
    let hi = counts.iter().copied().max().expect("counts");
    assert!(hi >= 2048, "{hi}");
    let nonzero: Vec<u16> = counts.iter().copied().filter(|&c| c > 0).collect();
    assert_eq!(nonzero.len(), 2, "{counts:?}");
    let ratio = f64::from(nonzero[0]) / f64::from(nonzero[1]);
    assert!((2.99..=3.01).contains(&ratio), "{ratio}");
    let p50 = s.quantile_ns(0.5).expect("samples") / 1000.0;
    let p90 = s.quantile_ns(0.9).expect("samples") / 1000.0;
    assert!((98.0..=102.0).contains(&p50), "{p50}");
    assert!((490.0..=510.0).contains(&p90), "{p90}");
}

#[test]
fn packed_counters_do_not_disturb_their_neighbours() {
    let mut s = RttSketch::default();
    for i in 0..WINDOW_BUCKETS {
        s.set(i, (i as u16 * 73) & 0x0FFF);
    }
    s.set(7, 4095);
    s.set(8, 0);
    s.set_clamped(15);
    s.set(WINDOW_BUCKETS - 1, 4095);
    assert_eq!(
        s.clamped(),
        15,
        "the last counter leaves the spike nibble alone"
    );
    s.set(
        WINDOW_BUCKETS - 1,
        ((WINDOW_BUCKETS - 1) as u16 * 73) & 0x0FFF,
    );
    for i in 0..WINDOW_BUCKETS {
        let want = match i {
            7 => 4095,
            8 => 0,
            _ => (i as u16 * 73) & 0x0FFF,
        };
        assert_eq!(s.get(i), want, "{i}");
    }
    s.halve();
    assert_eq!(s.get(7), 2047);
}

#[test]
fn node_accumulation_places_counts_at_absolute_buckets() {
    let a = sketch_of(&[50_000; 30]);
    let b = sketch_of(&[800_000; 10]);
    let mut acc = [0u64; SKETCH_BUCKETS];
    a.add_to(&mut acc);
    b.add_to(&mut acc);
    assert_eq!(acc.iter().sum::<u64>(), 40);
    let p50 = quantile_ns(&acc, 0.5).expect("samples");
    let p99 = quantile_ns(&acc, 0.99).expect("samples");
    assert!(
        (p50 - 50_000.0).abs() / 50_000.0 <= SKETCH_RELATIVE_ERROR,
        "{p50}"
    );
    assert!(
        (p99 - 800_000.0).abs() / 800_000.0 <= SKETCH_RELATIVE_ERROR,
        "{p99}"
    );
}

#[test]
fn values_outside_the_space_clamp_to_the_end_buckets() {
    let s = sketch_of(&[1_000, 5_000_000_000]);
    assert_eq!(s.quantile_ns(0.0), Some(coarse_value_ns(s.lo())));
    assert_eq!(
        s.quantile_ns(1.0),
        Some(coarse_value_ns(SKETCH_BUCKETS - 1))
    );
    assert_eq!(RttSketch::default().quantile_ns(0.5), None);
    assert_eq!(s.quantile_ns(1.5), None);
}

#[test]
fn worst_p99_codes_are_within_four_percent() {
    for c in [0usize, 1, 77, 150, SKETCH_BUCKETS - 1] {
        let v = pair_value_ns(pair_code(c)).expect("code");
        let exact = coarse_value_ns(c);
        assert!((v - exact).abs() / exact <= 0.041, "{c}: {v} vs {exact}");
    }
    assert_eq!(pair_value_ns(0), None);
}
