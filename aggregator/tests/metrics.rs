//! `/metrics` over a real HTTP port, fed by simulated agents over real gRPC; `promtool check
//! metrics` on the scrape when promtool is installed (CI installs Debian's `prometheus`).

use std::path::PathBuf;

use echomesh_proto::v1;
use echomesh_testkit::aggregator::scenarios::connected_agents;
use echomesh_testkit::http::{get, get_with};
use echomesh_testkit::sim::hello_message;
use echomesh_testkit::{SimAgent, TestAggregator, soon};

/// Where CI picks up artifacts: `<target>/artifacts`.
fn artifacts() -> PathBuf {
    echomesh_testkit::artifacts_dir(env!("CARGO_TARGET_TMPDIR"))
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn scrape_is_valid_openmetrics_with_live_figures() {
    // Per-edge series on, so promtool sees every family there is.
    let s = TestAggregator::start(|c| c.metrics_edge_series = true).await;
    let mut agents = connected_agents(&s, &["a", "b", "c"]).await;
    for (i, a) in agents.iter_mut().enumerate() {
        let lost = if i == 2 { 50 } else { 0 };
        a.report_acked(100, lost, 200).await;
    }
    // One refused session: a bad Hello is counted by reason.
    let bad = SimAgent::open(
        s.channel().await,
        hello_message("", v1::Network::Pod, "127.0.0.9"),
    )
    .await;
    if let Ok(mut bad) = bad {
        let _ = bad.wait_error().await;
    }
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    soon("the bad hello is counted", || {
        let addr = s.http_addr;
        let text = text.clone();
        async move {
            let r = get(addr, "/metrics").await;
            assert_eq!(r.status, 200);
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
                "{:?}",
                r.headers
            );
            let done = value(
                &r.body,
                r#"echomesh_ingest_errors_total{reason="bad_hello"}"#,
            ) == Some(1.0);
            *text.lock().expect("lock") = r.body;
            done
        }
    })
    .await;
    let text = text.lock().expect("lock").clone();
    assert_eq!(value(&text, "echomesh_connected_agents"), Some(3.0));
    assert_eq!(
        value(&text, r#"echomesh_reports_total{result="merged"}"#),
        Some(3.0)
    );
    assert_eq!(
        value(
            &text,
            r#"echomesh_node_loss_ratio{node="c",network="pod",direction="out"}"#
        ),
        Some(0.5)
    );
    assert_eq!(
        value(
            &text,
            r#"echomesh_node_rtt_seconds_count{node="a",network="pod",direction="out"}"#
        ),
        Some(200.0)
    );
    assert!(value(&text, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));
    assert_eq!(
        value(
            &text,
            r#"echomesh_edge_loss_ratio{src="c",src_network="pod",dst="a",dst_network="pod",dst_addr="127.0.0.1"}"#
        ),
        Some(0.5)
    );
    assert_eq!(value(&text, "echomesh_edge_series_dropped"), Some(0.0));
    let om = get_with(
        s.http_addr,
        "/metrics",
        "application/openmetrics-text;version=1.0.0",
    )
    .await;
    assert!(
        om.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        om.headers
    );
    assert!(om.body.ends_with("# EOF\n"));
    assert!(om.body.contains("echomesh_build_info{version="));
    let path = artifacts().join("metrics.txt");
    std::fs::write(&path, &text).expect("write scrape");
    eprintln!("scrape saved to {}", path.display());
    promtool_check(&path);
    s.shutdown().await;
}

/// Runs `promtool check metrics` on the scrape, or says why it cannot.
fn promtool_check(path: &std::path::Path) {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => panic!("cannot reopen {}: {e}", path.display()),
    };
    let out = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(file)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Only this check is skipped; in CI, where promtool is installed, that is a failure.
            echomesh_testkit::root::skip(
                "promtool check metrics",
                "promtool is not installed (apt-get install prometheus)",
            );
            return;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{report}"
    );
    // promtool prints lint findings (e.g. naming) but exits 0 for them; we want none.
    assert!(
        report.trim().is_empty(),
        "promtool lint findings:\n{report}"
    );
}

/// The names a rule file or dashboard uses: `(exported, recorded)`. A word of the shape
/// `level:echomesh_metric:operations` is a recording rule (recorded); any other word, or part of
/// a word between colons, that starts with `echomesh_` is an exported series.
fn series_names(text: &str) -> (Vec<&str>, Vec<&str>) {
    let (mut exported, mut recorded) = (Vec::new(), Vec::new());
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
        let parts: Vec<&str> = word.split(':').collect();
        if parts.len() == 3
            && parts.iter().all(|p| !p.is_empty())
            && parts[1].starts_with("echomesh_")
        {
            recorded.push(word);
        } else {
            exported.extend(parts.into_iter().filter(|p| p.starts_with("echomesh_")));
        }
    }
    for v in [&mut exported, &mut recorded] {
        v.sort_unstable();
        v.dedup();
    }
    (exported, recorded)
}

/// The recording rules a rule file defines (`record: NAME`).
fn recording_rules(rules: &str) -> Vec<&str> {
    rules
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            l.strip_prefix("- record:")
                .or_else(|| l.strip_prefix("record:"))
        })
        .map(str::trim)
        .collect()
}

#[test]
fn series_names_split_exported_from_recorded() {
    let (exported, recorded) = series_names(
        "expr: sum by (state) (echomesh_edges)\n- record: state:echomesh_edges:sum\n\
         # named level:metric:operations; see echomesh_node_expected_down: below",
    );
    assert_eq!(exported, ["echomesh_edges", "echomesh_node_expected_down"]);
    assert_eq!(recorded, ["state:echomesh_edges:sum"]);
    assert_eq!(
        recording_rules("rules:\n  - record: a:echomesh_x:sum\n    expr: x\n"),
        ["a:echomesh_x:sum"]
    );
}

/// The alert and recording rules (deploy/components/monitoring/rules.yaml) and the Grafana
/// dashboard (dashboards/echomesh.json) only name series this scrape has, with the labels they
/// select on, or recording rules that rules.yaml defines (those are Prometheus's, not scraped).
#[tokio::test]
async fn every_series_the_alert_rules_use_is_exported() {
    let monitoring =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/components/monitoring");
    let read = |name: &str| {
        let path = monitoring.join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let rules = read("rules.yaml");
    let dashboard = read("dashboards/echomesh.json");
    let defined = recording_rules(&rules);
    assert!(!defined.is_empty(), "rules.yaml defines recording rules");
    let s = TestAggregator::start(|_| {}).await;
    let mut agents = connected_agents(&s, &["a", "b"]).await;
    for a in &mut agents {
        a.report_acked(10, 0, 100).await;
    }
    let text = get(s.http_addr, "/metrics").await.body;
    for (file, content) in [
        ("rules.yaml", &rules),
        ("dashboards/echomesh.json", &dashboard),
    ] {
        let (names, recorded) = series_names(content);
        assert!(!names.is_empty(), "{file} names echomesh series");
        for name in recorded {
            assert!(
                defined.contains(&name),
                "{file} uses the recording rule {name}, which rules.yaml does not define"
            );
        }
        for name in names {
            // A sample name, or a family name (a histogram's `# TYPE` line).
            let exported = text.contains(&format!("# TYPE {name} "))
                || text.lines().any(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                });
            assert!(
                exported,
                "{name} is used by {file} but not exported:\n{text}"
            );
        }
    }
    for selector in [r#"direction="in""#, r#"direction="out""#, r#"node="a""#] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("echomesh_node_loss_ratio{") && l.contains(selector)),
            "{selector}"
        );
    }
    s.shutdown().await;
}

/// Planned against unplanned through the whole path: the mocked Kubernetes API says b is cordoned
/// and NotReady (a reboot) and c is `Ready=Unknown` without a drain (a partition); agent a loses
/// every probe. b leaves the alerting series and is named instead; c counts and would page.
#[tokio::test]
async fn a_drained_node_leaves_the_loss_series_and_a_partitioned_one_stays() {
    use echomesh_testkit::k8s::fixtures::{self, NodeExt as _};
    use echomesh_testkit::k8s::mock_api::MockApi;

    let (mut nodes, pods) = fixtures::three_nodes();
    nodes[1] = fixtures::node("b", &["192.168.0.2"])
        .cordoned()
        .unreachable();
    nodes[2] = fixtures::node("c", &["192.168.0.3"]).unreachable();
    let (_api, client) = MockApi::start(nodes, pods);
    let s = TestAggregator::start_with_kube(client, |_| {}).await;
    let mut a = SimAgent::open(
        s.channel().await,
        hello_message("a", v1::Network::Pod, "10.244.0.10"),
    )
    .await
    .expect("session");
    let assigned = a.wait_assignment(4).await;
    let flagged: Vec<(&str, bool)> = assigned
        .targets
        .iter()
        .map(|t| (t.node.as_str(), t.expected_down))
        .collect();
    assert!(
        flagged.iter().all(|(n, down)| *down == (*n == "b")),
        "{flagged:?}"
    );
    a.report_acked(10, 10, 0).await;
    let text = get(s.http_addr, "/metrics").await.body;
    let series = |node: &str, net: &str, dir: &str| {
        value(
            &text,
            &format!(
                r#"echomesh_node_loss_ratio{{node="{node}",network="{net}",direction="{dir}"}}"#
            ),
        )
    };
    assert_eq!(series("b", "pod", "in"), None, "{text}");
    assert_eq!(series("b", "host", "in"), None, "{text}");
    assert_eq!(series("c", "pod", "in"), Some(1.0), "{text}");
    assert_eq!(series("c", "host", "in"), Some(1.0), "{text}");
    // a's own figures carry only the partition.
    assert_eq!(series("a", "pod", "out"), Some(1.0), "{text}");
    assert_eq!(
        value(&text, r#"echomesh_node_expected_down{node="b"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"echomesh_node_expected_down{node="c"}"#),
        None
    );
    assert_eq!(value(&text, "echomesh_expected_down_edges"), Some(2.0));
    // The query API shows the evidence beside both; only b's edges are expected.
    let mut g = s.graph_client().await;
    let edges = g
        .list_edges(v1::ListEdgesRequest::default())
        .await
        .expect("edges")
        .into_inner()
        .edges;
    assert_eq!(edges.len(), 4);
    for e in &edges {
        assert_eq!(e.expected_down, e.target_node == "b", "{e:?}");
        assert_eq!(
            e.target_node_ready, "Unknown since 2026-01-02T03:04:05Z (NodeStatusUnknown)",
            "{e:?}"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn refused_queries_and_pre_decode_refusals_are_exported_per_kind() {
    let s = TestAggregator::start(|_| {}).await;
    let text = get(s.http_addr, "/metrics").await.body;
    for kind in ["grpc", "json", "metrics"] {
        let series = format!("echomesh_queries_refused_total{{kind=\"{kind}\"}}");
        assert_eq!(value(&text, &series), Some(0.0), "{series}:\n{text}");
    }
    assert_eq!(
        value(
            &text,
            "echomesh_ingest_errors_total{reason=\"too_many_entries\"}"
        ),
        Some(0.0),
        "{text}"
    );
    s.shutdown().await;
}
