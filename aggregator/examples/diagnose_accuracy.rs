//! Precision and recall of the diagnosis on generated fault patterns, as a table.
//!
//! `cargo run -p echomesh-aggregator --example diagnose_accuracy [CASES]` runs CASES
//! seeded cases (default 200) of each pattern on clusters of 20 to 50 nodes in 3 zones (a quarter
//! of them host network only, half of them dual stack) and compares the culprits named with the
//! faults injected (`echomesh_aggregator::diagnose::scenarios`). A culprit is correct when its
//! kind, subject (and a link's target, a one-way fault's direction) match an injected fault.
//! The tests assert a floor on the same figures; bench/README.md records a run.

use std::time::Instant;

use echomesh_aggregator::diagnose::scenarios::{self, PATTERNS};
use echomesh_aggregator::diagnose::{Settings, diagnose};

fn main() {
    let cases: u64 = match std::env::args().nth(1) {
        None => 200,
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("diagnose_accuracy: CASES must be a positive whole number, got {s:?}");
                std::process::exit(2);
            }
        },
    };
    println!(
        "{:<18} {:>6} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7} {:>10}",
        "pattern", "cases", "named", "correct", "faults", "found", "precision", "recall", "ms/diag"
    );
    let (mut all_c, mut all_n, mut all_f, mut all_t) = (0, 0, 0, 0);
    for pattern in PATTERNS {
        let (mut correct, mut named, mut found, mut total) = (0, 0, 0, 0);
        let mut spent = 0.0;
        for seed in 0..cases {
            let (snap, truth) = scenarios::case(pattern, seed);
            let t = Instant::now();
            let d = diagnose(&snap, &Settings::default());
            spent += t.elapsed().as_secs_f64();
            let s = scenarios::score(&d, &truth);
            correct += s.0;
            named += s.1;
            found += s.2;
            total += s.3;
        }
        all_c += correct;
        all_n += named;
        all_f += found;
        all_t += total;
        println!(
            "{:<18} {:>6} {:>7} {:>7} {:>7} {:>7} {:>9.3} {:>7.3} {:>10.2}",
            pattern,
            cases,
            named,
            correct,
            total,
            found,
            correct as f64 / named.max(1) as f64,
            found as f64 / total.max(1) as f64,
            1000.0 * spent / cases as f64
        );
    }
    println!(
        "{:<18} {:>6} {:>7} {:>7} {:>7} {:>7} {:>9.3} {:>7.3}",
        "all",
        cases * PATTERNS.len() as u64,
        all_n,
        all_c,
        all_t,
        all_f,
        all_c as f64 / all_n.max(1) as f64,
        all_f as f64 / all_t.max(1) as f64
    );
    // What one diagnosis costs on a large cluster (each /metrics scrape and Diagnose runs one).
    for nodes in [200, 500] {
        let cluster = scenarios::Cluster {
            nodes,
            zones: 3,
            both_planes: true,
            dual_stack: false,
        };
        let mut rng = scenarios::Rng::new(7);
        let (snap, _) = cluster.generate(&[scenarios::Fault::NodeDown(1)], &mut rng);
        let t = Instant::now();
        let d = diagnose(&snap, &Settings::default());
        println!(
            "scale: {nodes} nodes, {} edges: {:.0} ms per diagnosis ({} culprit)",
            snap.edges.len(),
            1000.0 * t.elapsed().as_secs_f64(),
            d.culprits.len()
        );
    }
}
