//! Series counts, histogram arithmetic and top-K selection on graphs built in memory.

use std::sync::Arc;
use std::time::Duration;

use echomesh_testkit::aggregator::mesh::Mesh;

use super::*;
use crate::graph::EventHub;
use crate::graph::GraphConfig;
use crate::ingest::{Ingest, IngestConfig};
use crate::policy::FullMesh;

echomesh_testkit::graph_filler!(crate::graph);

/// A full-mesh pod-network graph of `n` nodes after `reports` reports each; node 0 is cut off
/// (every probe to and from it is lost).
fn mesh(n: usize, reports: u64) -> Arc<Graph> {
    let graph = Arc::new(Graph::new(GraphConfig::default(), EventHub::new(16, 1)));
    Mesh {
        nodes: n,
        peers: &|i| (0..n).filter(|&j| j != i).collect(),
        lost: &|i, j| if i == 0 || j == 0 { 10 } else { 0 },
        sent: 10,
        rtt_us: &[80, 90, 100, 110, 120, 130, 150, 200, 300, 2_000],
        reports,
        report_interval: Duration::from_secs(1),
    }
    .fill(&GraphFill(&graph));
    graph
}

fn scrape(graph: &Arc<Graph>, cfg: MetricsConfig) -> String {
    let ingest = Ingest::new(graph.clone(), IngestConfig::default(), Arc::new(FullMesh));
    Metrics::new(graph.clone(), ingest, cfg).render()
}

fn sample<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
}

#[test]
fn series_grow_linearly_in_nodes_never_quadratically() {
    let cfg = MetricsConfig::default();
    let mut figures = Vec::new();
    for n in [10usize, 100, 1000] {
        let text = scrape(&mesh(n, 1), cfg);
        let series = echomesh_testkit::metrics::series_count(&text);
        eprintln!(
            "nodes {n:>5}  edges {:>7}  series {series:>6}  per node {:.1}  collect {}s",
            n * (n - 1),
            series as f64 / n as f64,
            sample(&text, "echomesh_metrics_collect_seconds ").unwrap_or("?"),
        );
        figures.push((n, series));
    }
    // Per added node, the same handful of series: loss in/out and two RTT histograms of
    // 13 buckets + sum + count = 32 per node and network.
    let per_node =
        |(n1, s1): (usize, usize), (n2, s2): (usize, usize)| (s2 - s1) as f64 / (n2 - n1) as f64;
    let a = per_node(figures[0], figures[1]);
    let b = per_node(figures[1], figures[2]);
    assert!((a - 32.0).abs() < 0.5, "{a} series per node from 10 to 100");
    assert!(
        (b - 32.0).abs() < 0.5,
        "{b} series per node from 100 to 1000"
    );
    let (n, s) = figures[2];
    assert!(s <= 32 * n + 200, "{s} series for {n} nodes");
}

#[test]
fn per_edge_series_are_opt_in_and_capped() {
    let g = mesh(30, 1);
    let off = scrape(&g, MetricsConfig::default());
    assert!(!off.contains("echomesh_edge_loss_ratio"), "off by default");
    let cfg = MetricsConfig {
        edge_series: true,
        max_edge_series: 100,
        ..MetricsConfig::default()
    };
    let on = scrape(&g, cfg);
    let loss = on
        .lines()
        .filter(|l| l.starts_with("echomesh_edge_loss_ratio{"))
        .count();
    assert_eq!(loss, 100);
    assert_eq!(
        sample(&on, "echomesh_edge_series_dropped "),
        Some((30 * 29 - 100).to_string().as_str())
    );
    // The cut node's edges are the worst, so they are kept first.
    assert!(on.contains(r#"echomesh_edge_loss_ratio{src="node-0000""#));
}

#[test]
fn a_cut_node_shows_in_loss_ratios_and_top_edges() {
    let g = mesh(10, 3);
    let text = scrape(&g, MetricsConfig::default());
    for dir in ["in", "out"] {
        let cut = format!(
            r#"echomesh_node_loss_ratio{{node="node-0000",network="pod",direction="{dir}"}} "#
        );
        assert_eq!(sample(&text, &cut), Some("1.0"), "{text}");
        let fine = format!(
            r#"echomesh_node_loss_ratio{{node="node-0005",network="pod",direction="{dir}"}} "#
        );
        // node-0005 loses its edge to and from node-0000: 1 of 9.
        let v: f64 = sample(&text, &fine).expect("present").parse().expect("f64");
        assert!((v - 1.0 / 9.0).abs() < 1e-9, "{v}");
    }
    assert_eq!(
        sample(&text, r#"echomesh_edges{state="down"} "#),
        Some("18")
    );
    assert_eq!(sample(&text, r#"echomesh_edges{state="up"} "#), Some("72"));
    let top: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("echomesh_top_edge_loss_ratio{"))
        .collect();
    assert_eq!(top.len(), 18, "only the unhealthy edges: {top:?}");
    assert!(top.iter().all(|l| l.contains("node-0000")));
    let small = scrape(
        &g,
        MetricsConfig {
            top_k: 5,
            ..MetricsConfig::default()
        },
    );
    let top = small
        .lines()
        .filter(|l| l.starts_with("echomesh_top_edge_loss_ratio{"))
        .count();
    assert_eq!(top, 5);
}

#[test]
fn a_drained_node_is_left_out_of_the_alerting_series_and_named_instead() {
    let g = mesh(10, 3);
    g.set_expected_down_nodes(std::iter::once(Arc::from("node-0000")).collect());
    let text = scrape(&g, MetricsConfig::default());
    // Neither the drained node's own series nor its peers' figures show the failing edges.
    let drained: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(r#"node="node-0000""#))
        .collect();
    assert_eq!(
        drained,
        [r#"echomesh_node_expected_down{node="node-0000"} 1"#],
        "{text}"
    );
    for dir in ["in", "out"] {
        let peer = format!(
            r#"echomesh_node_loss_ratio{{node="node-0005",network="pod",direction="{dir}"}} "#
        );
        assert_eq!(sample(&text, &peer), Some("0.0"), "{text}");
    }
    assert_eq!(
        sample(&text, r#"echomesh_loss_ratio{network="pod"} "#),
        Some("0.0")
    );
    assert_eq!(
        sample(&text, r#"echomesh_node_expected_down{node="node-0000"} "#),
        Some("1")
    );
    assert_eq!(sample(&text, "echomesh_expected_down_edges "), Some("18"));
    // The edges are still counted by state; none is a top edge.
    assert_eq!(
        sample(&text, r#"echomesh_edges{state="down"} "#),
        Some("18")
    );
    assert!(!text.contains("echomesh_top_edge_loss_ratio{"), "{text}");
    // A node that is only NotReady is not expected down: its outage counts (a partition).
    g.set_expected_down_nodes(std::collections::BTreeSet::new());
    g.set_not_ready_nodes(
        std::iter::once((
            Arc::from("node-0000"),
            Arc::from("Unknown (NodeStatusUnknown)"),
        ))
        .collect(),
    );
    let text = scrape(&g, MetricsConfig::default());
    let cut = r#"echomesh_node_loss_ratio{node="node-0000",network="pod",direction="in"} "#;
    assert_eq!(sample(&text, cut), Some("1.0"));
    assert!(!text.contains("echomesh_node_expected_down{"), "{text}");
    assert!(text.contains("# TYPE echomesh_node_expected_down gauge"));
    assert_eq!(sample(&text, "echomesh_expected_down_edges "), Some("0"));
}

#[test]
fn rtt_histograms_count_replies_and_only_grow() {
    let g = mesh(5, 2);
    let ingest = Ingest::new(g.clone(), IngestConfig::default(), Arc::new(FullMesh));
    let m = Metrics::new(g.clone(), ingest, MetricsConfig::default());
    let first = m.render();
    let key = r#"echomesh_node_rtt_seconds_count{node="node-0001",network="pod",direction="out"} "#;
    // node-0001 received 2 reports x 3 healthy peers x 10 replies.
    assert_eq!(sample(&first, key), Some("60"));
    let inf = r#"echomesh_node_rtt_seconds_bucket{le="+Inf",node="node-0001",network="pod",direction="out"} "#;
    assert_eq!(sample(&first, inf), Some("60"));
    // 90% of the samples are at most 300us, one in ten is 2ms.
    let le1ms = r#"echomesh_node_rtt_seconds_bucket{le="0.001",node="node-0001",network="pod",direction="out"} "#;
    let v: u64 = sample(&first, le1ms).expect("bucket").parse().expect("u64");
    assert!((50..=56).contains(&v), "{v}");
    // Nothing new: a second scrape repeats the same counts.
    let second = m.render();
    assert_eq!(sample(&second, key), Some("60"));
    assert_eq!(
        sample(&first, "echomesh_rtt_seconds_count{network=\"pod\"} "),
        Some("240")
    );
}

#[test]
fn cumulative_is_monotonic_when_edges_vanish() {
    let mut c = Cumulative::default();
    let mut shape = [0u64; SKETCH_BUCKETS];
    shape[10] = 3;
    shape[20] = 1;
    c.advance(100, &shape);
    assert_eq!(c.count(), 100);
    // An agent was forgotten: the sum of received shrinks. Nothing is subtracted.
    c.advance(40, &shape);
    assert_eq!(c.count(), 100);
    c.advance(50, &shape);
    assert_eq!(c.count(), 110);
    // No shape (no RTT samples): nothing to spread.
    c.advance(70, &[0; SKETCH_BUCKETS]);
    assert_eq!(c.count(), 110);
}

#[test]
fn exposition_carries_every_documented_family() {
    let text = scrape(&mesh(3, 1), MetricsConfig::default());
    for family in [
        "echomesh_edges",
        "echomesh_expected_down_edges",
        "echomesh_node_expected_down",
        "echomesh_node_loss_ratio",
        "echomesh_node_rtt_seconds",
        "echomesh_loss_ratio",
        "echomesh_rtt_seconds",
        "echomesh_top_edge_loss_ratio",
        "echomesh_top_edge_rtt_p99_seconds",
        "echomesh_connected_agents",
        "echomesh_known_agents",
        "echomesh_reports",
        "echomesh_edge_updates",
        "echomesh_ingest_errors",
        "echomesh_build",
        "echomesh_metrics_collect_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    assert!(text.contains(r#"echomesh_ingest_errors_total{reason="bad_hello"} 0"#));
    assert!(text.contains(r#"echomesh_reports_total{result="merged"} 3"#));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn the_format_follows_the_accept_header() {
    assert_eq!(
        Format::from_accept(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )),
        Format::OpenMetrics
    );
    assert_eq!(Format::from_accept(Some("*/*")), Format::PrometheusText);
    assert_eq!(Format::from_accept(None), Format::PrometheusText);
    assert!(
        Format::PrometheusText
            .content_type()
            .starts_with("text/plain; version=0.0.4")
    );
}

#[test]
fn metrics_flags_reach_the_config() {
    use clap::Parser as _;
    let c = crate::Config::try_parse_from([
        "echomesh-aggregator",
        "--metrics-top-k",
        "5",
        "--metrics-edge-series",
        "--metrics-max-edge-series",
        "300",
        "--metrics-max-nodes",
        "2000",
    ])
    .expect("valid flags");
    assert_eq!(
        c.metrics(),
        MetricsConfig {
            top_k: 5,
            edge_series: true,
            max_edge_series: 300,
            max_nodes: 2000,
        }
    );
    assert_eq!(crate::Config::local().metrics(), MetricsConfig::default());
    let e = crate::Config::try_parse_from(["x", "--metrics-top-k", "many"]).expect_err("bad");
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn per_node_series_can_be_capped_to_the_worst_nodes() {
    // 30 nodes, node 0 cut off: the worst node must stay, the rest is cut to the cap by name.
    let g = mesh(30, 2);
    let all = scrape(&g, MetricsConfig::default());
    let capped = scrape(
        &g,
        MetricsConfig {
            max_nodes: 5,
            ..MetricsConfig::default()
        },
    );
    // The nodes named by the series starting with `prefix`.
    let nodes = |text: &str, prefix: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| {
                l.split("node=\"")
                    .nth(1)?
                    .split('"')
                    .next()
                    .map(str::to_string)
            })
            .collect()
    };
    assert_eq!(nodes(&all, "echomesh_node_loss_ratio{").len(), 30);
    let shown = nodes(&capped, "echomesh_node_loss_ratio{");
    assert_eq!(shown.len(), 5, "{shown:?}");
    assert!(shown.contains("node-0000"), "the cut node stays: {shown:?}");
    // The RTT histograms follow the same nodes.
    let rtt = nodes(&capped, "echomesh_node_rtt_seconds_count{");
    assert_eq!(rtt, shown);
    assert_eq!(sample(&capped, "echomesh_node_series_omitted "), Some("25"));
    assert_eq!(sample(&all, "echomesh_node_series_omitted "), Some("0"));
    // Cluster-wide figures do not depend on the cap.
    for prefix in [
        "echomesh_edges{state=\"down\"}",
        "echomesh_rtt_seconds_count{",
    ] {
        assert_eq!(sample(&all, prefix), sample(&capped, prefix), "{prefix}");
    }
    let series = echomesh_testkit::metrics::series_count(&capped);
    assert!(
        series + 25 * 32 <= echomesh_testkit::metrics::series_count(&all) + 1,
        "{series} series with the cap"
    );
}
