//! The JSON API and the page over a real HTTP port, fed by simulated agents over real gRPC.

use echomesh_testkit::aggregator::scenarios::cluster_with_broken_node;
use echomesh_testkit::http::get;

#[tokio::test]
async fn matrix_summary_nodes_and_edges_mirror_the_graph() {
    let (s, _agents) = cluster_with_broken_node().await;
    let m = get(s.http_addr, "/api/v1/matrix?metric=loss&network=pod").await;
    assert_eq!(m.status, 200, "{}", m.body);
    assert_eq!(m.header("content-type"), Some("application/json"));
    let m = m.json();
    assert_eq!(m["nodes"], serde_json::json!(["a", "b", "c", "d"]));
    assert_eq!(m["metric"], "loss");
    assert_eq!(m["network"], "pod");
    let states = m["states"].as_array().expect("states");
    let values = m["values"].as_array().expect("values");
    assert_eq!(states.len(), 16);
    assert_eq!(values.len(), 16);
    for i in 0..4 {
        for j in 0..4 {
            let st = states[i * 4 + j].as_str().expect("state");
            let want = if i == j {
                "none"
            } else if i == 3 || j == 3 {
                "down"
            } else {
                "up"
            };
            assert_eq!(st, want, "cell {i},{j}");
        }
    }
    assert!(values[0].is_null(), "the diagonal has no edge");
    assert_eq!(values[3].as_f64(), Some(100.0), "a -> d loses everything");
    assert_eq!(values[1].as_f64(), Some(0.0));

    let p99 = get(s.http_addr, "/api/v1/matrix?metric=p99&network=pod")
        .await
        .json();
    let v = p99["values"][1].as_f64().expect("a -> b has a p99");
    assert!((100.0..=300.0).contains(&v), "p99 of 150us replies: {v}");

    let sum = get(s.http_addr, "/api/v1/summary").await.json();
    assert_eq!(sum["agents_connected"], 4);
    assert_eq!(sum["edges"], 12);
    assert_eq!(sum["edges_down"], 6);

    let nodes = get(s.http_addr, "/api/v1/nodes").await.json();
    let d = nodes["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "d")
        .expect("d listed")
        .clone();
    assert_eq!(d["edges_down"], 3);
    assert_eq!(d["network"], "pod");
    assert_eq!(
        nodes["agents_by_network"],
        serde_json::json!({"pod": 4, "host": 0}),
        "the page opens on a network with agents"
    );

    let down = get(s.http_addr, "/api/v1/edges?state=down&sort=loss&limit=4")
        .await
        .json();
    assert_eq!(down["total_matched"], 6);
    assert_eq!(down["edges"].as_array().map(Vec::len), Some(4));
    assert_eq!(down["next_page_token"], "off:4");
    s.shutdown().await;
}

#[tokio::test]
async fn edge_details_carry_percentiles_and_history() {
    let (s, _agents) = cluster_with_broken_node().await;
    let e = get(
        s.http_addr,
        "/api/v1/edge?source=a&target=b&source_network=pod&target_network=pod",
    )
    .await;
    assert_eq!(e.status, 200, "{}", e.body);
    let e = e.json();
    assert_eq!(e["state"], "up");
    assert_eq!(e["sent_total"], 300);
    for q in ["p50_us", "p90_us", "p99_us", "p999_us"] {
        let v = e[q].as_f64().expect(q);
        assert!((100.0..=250.0).contains(&v), "{q} = {v}");
    }
    let h = e["history"].as_array().expect("history");
    assert_eq!(h.len(), 1, "all three reports fall in this minute: {h:?}");
    assert_eq!(h[0]["minutes_ago"], 0);
    assert_eq!(h[0]["sent"], 300);
    assert_eq!(h[0]["lost"], 0);
    let d = get(s.http_addr, "/api/v1/edge?source=a&target=d")
        .await
        .json();
    assert_eq!(d["state"], "down");
    assert_eq!(d["loss_1m_pct"], 100.0);
    assert_eq!(d["history"][0]["loss_pct"], 100.0);
    let pct = get(
        s.http_addr,
        "/api/v1/percentiles?scope=node&node=a&q=0.5,0.999",
    )
    .await
    .json();
    assert_eq!(pct["quantiles"], serde_json::json!([0.5, 0.999]));
    s.shutdown().await;
}

#[tokio::test]
async fn bad_queries_are_400_with_a_message_and_missing_things_404() {
    let (s, _agents) = cluster_with_broken_node().await;
    let cases = [
        (
            "/api/v1/matrix?metric=p95",
            400,
            "unknown metric \"p95\": expected one of loss, p50, p99",
        ),
        (
            "/api/v1/matrix?network=overlay",
            400,
            "unknown network \"overlay\": expected one of pod, host, any",
        ),
        (
            "/api/v1/matrix?metirc=loss",
            400,
            "unknown parameter \"metirc\": expected one of metric, network, zone",
        ),
        (
            "/api/v1/edges?state=sideways",
            400,
            "unknown state \"sideways\": expected one of up, degraded, down, unknown",
        ),
        (
            "/api/v1/edges?limit=lots",
            400,
            "limit must be a whole number, got \"lots\"",
        ),
        // Validation that lives in the query service comes through unchanged.
        (
            "/api/v1/edges?min_loss_pct=150",
            400,
            "min_loss_pct must be within 0..=100, got 150",
        ),
        (
            "/api/v1/edges?page_token=bogus",
            400,
            "page_token \"bogus\" is not a token returned by ListEdges",
        ),
        (
            "/api/v1/percentiles?q=2",
            400,
            "quantiles must be within 0..=1, got 2",
        ),
        (
            "/api/v1/edge?target=b",
            400,
            "source_node and target are required",
        ),
        (
            "/api/v1/edge?source=zz&target=b",
            404,
            "no agent on node \"zz\"",
        ),
        ("/api/v1/nope", 404, "no API endpoint /api/v1/nope"),
    ];
    for (path, status, msg) in cases {
        let r = get(s.http_addr, path).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert_eq!(r.json()["error"], msg, "{path}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn the_page_and_its_files_are_served() {
    let (s, _agents) = cluster_with_broken_node().await;
    let page = get(s.http_addr, "/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    assert!(page.body.contains("<div id=\"maps\""));
    for (path, ctype) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/zones.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let r = get(s.http_addr, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with(ctype)),
            "{path}"
        );
        assert!(r.body.len() > 500, "{path}");
    }
    s.shutdown().await;
}
