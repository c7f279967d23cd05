//! `echomesh nodes --summary`, `echomesh zones` and `echomesh matrix --zone` against a real
//! aggregator: node d is cut off on both networks, a and b are in zone z1, c in z2, d has no
//! zone.

mod support;

use echomesh_testkit::aggregator::scenarios::cluster_with_broken_node_on_both_networks;

use support::run;

#[tokio::test]
async fn summaries_show_the_cut_node_first_and_the_zone_grid() {
    let (s, _agents) = cluster_with_broken_node_on_both_networks().await;
    s.graph.set_node_zones(
        [("a", "z1"), ("b", "z1"), ("c", "z2")]
            .into_iter()
            .map(|(n, z)| (n.into(), z.into()))
            .collect(),
    );
    let url = s.url();

    let (code, out, err) = run(&url, &["nodes", "--summary"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("NODE  ZONE  PROBERS  IN-DOWN  IN-LOSS%  IN-P99"),
        "{out}"
    );
    let first: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&first[..4], ["d", "-", "3", "14"], "{out}");

    let (code, out, _) = run(&url, &["nodes", "--summary", "--zone", "-", "-o", "json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["total"], 1, "{out}");
    assert_eq!(v["nodes"][0]["node"], "d");
    assert_eq!(v["nodes"][0]["in"]["down"], 14);

    let (code, out, _) = run(&url, &["zones"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("  [0] z1\n  [1] z2\n  [2] -\n"), "{out}");
    assert!(out.contains("DOWN 8/8"), "z1 -> d: {out}");

    let (code, out, _) = run(&url, &["matrix", "--zone", "z1"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("  [0] a\n  [1] b\n"), "{out}");
    assert!(!out.contains("[2]"), "only zone z1: {out}");

    // --zone needs --summary; a bad limit is refused before anything is sent.
    let (code, _, err) = run(&url, &["nodes", "--zone", "z1"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("--summary"), "{err}");
    let (code, _, err) = run(&url, &["nodes", "--summary", "--limit", "0"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("0 is not in 1..=10000"), "{err}");
    s.shutdown().await;
}
