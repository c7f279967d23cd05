//! The views that scale over real gRPC and the JSON API: the node summary (worst first), the
//! zone grid, the matrix zoomed into a zone, and their bad input — on a cluster of simulated
//! agents where node d is cut off on both networks, a and b in zone z1, c and d in z2.

use echomesh_proto::v1;
use echomesh_testkit::aggregator::scenarios::cluster_with_broken_node_on_both_networks;
use echomesh_testkit::http::get;

fn zones(s: &echomesh_testkit::TestAggregator) {
    s.graph.set_node_zones(
        [("a", "z1"), ("b", "z1"), ("c", "z2"), ("d", "z2")]
            .into_iter()
            .map(|(n, z)| (n.into(), z.into()))
            .collect(),
    );
}

#[tokio::test]
async fn the_node_summary_puts_the_cut_node_first_everywhere() {
    let (s, _agents) = cluster_with_broken_node_on_both_networks().await;
    zones(&s);
    let r = s
        .graph_client()
        .await
        .node_summary(v1::NodeSummaryRequest::default())
        .await
        .expect("node summary")
        .into_inner();
    assert_eq!(r.total, 4);
    let d = &r.nodes[0];
    assert_eq!((d.node.as_str(), d.zone.as_str()), ("d", "z2"), "{r:?}");
    let (i, o) = (d.r#in.unwrap_or_default(), d.out.unwrap_or_default());
    // Every agent probes every other address of both networks: d's two agents probe 7 each, and
    // 7 agents probe each of d's two addresses; all DOWN.
    assert_eq!((i.down, o.down), (14, 14), "{d:?}");
    assert!(d.badness >= 28e6, "{}", d.badness);
    assert_eq!(
        d.probers, 3,
        "full mesh: the 3 other agents of each network"
    );
    // Its peers have a DOWN edge each way to d, among ten UP ones: far behind it.
    assert!(r.nodes[1].badness < d.badness / 3.0, "{r:?}");

    let j = get(
        s.http_addr,
        "/api/v1/node-summary?network=pod&zone=z2&limit=1",
    )
    .await;
    assert_eq!(j.status, 200, "{}", j.body);
    let v = j.json();
    assert_eq!(v["network"], "pod");
    assert_eq!(v["total"], 2);
    assert_eq!(v["next_page_token"], "off:1");
    let n = &v["nodes"][0];
    assert_eq!(
        (n["node"].as_str(), n["zone"].as_str()),
        (Some("d"), Some("z2"))
    );
    for dir in ["in", "out"] {
        for k in [
            "up",
            "degraded",
            "down",
            "unknown",
            "loss_pct",
            "loss_10s_pct",
            "p99_us",
        ] {
            assert!(n[dir].get(k).is_some(), "{dir}.{k} in {n}");
        }
    }
    assert_eq!(n["in"]["down"], 3);
    assert!(n["badness"].as_f64().unwrap_or(0.0) >= 6e6, "{n}");
    let by_name = get(s.http_addr, "/api/v1/node-summary?sort=name")
        .await
        .json();
    assert_eq!(by_name["nodes"][0]["node"], "a");
    let unknown = get(s.http_addr, "/api/v1/node-summary?zone=-").await.json();
    assert_eq!(unknown["total"], 0, "every node has a zone");
    s.shutdown().await;
}

#[tokio::test]
async fn the_zone_grid_and_a_zoomed_matrix_show_the_cut() {
    let (s, _agents) = cluster_with_broken_node_on_both_networks().await;
    zones(&s);
    let v = get(s.http_addr, "/api/v1/zones?network=any").await.json();
    assert_eq!(v["zones"], serde_json::json!(["z1", "z2"]));
    let cells = v["cells"].as_array().cloned().unwrap_or_default();
    assert_eq!(cells.len(), 4, "{v}");
    let cell = |f: &str, t: &str| {
        cells
            .iter()
            .find(|c| c["from_zone"] == f && c["to_zone"] == t)
            .cloned()
            .unwrap_or_default()
    };
    // z1 -> z2: a's and b's four agents towards c's and d's four addresses: 16 edges, the 8
    // towards d DOWN. Inside z1 each of the four agents probes the three other addresses.
    let c = cell("z1", "z2");
    assert_eq!(
        (c["edges"].as_u64(), c["down"].as_u64()),
        (Some(16), Some(8)),
        "{c}"
    );
    let inside = cell("z1", "z1");
    assert_eq!(
        (inside["edges"].as_u64(), inside["up"].as_u64()),
        (Some(12), Some(12))
    );

    let m = get(s.http_addr, "/api/v1/matrix?zone=z2&network=pod")
        .await
        .json();
    assert_eq!(m["nodes"], serde_json::json!(["c", "d"]));
    assert_eq!(m["states"][1], "down", "{m}");
    let none = get(s.http_addr, "/api/v1/matrix?zone=-").await.json();
    assert_eq!(none["nodes"], serde_json::json!([]));
    s.shutdown().await;
}

#[tokio::test]
async fn bad_view_queries_are_400_with_the_reason() {
    let (s, _agents) = cluster_with_broken_node_on_both_networks().await;
    for (path, msg) in [
        (
            "/api/v1/node-summary?sort=worst",
            "unknown sort \"worst\": expected one of badness, name",
        ),
        (
            "/api/v1/node-summary?limit=20000",
            "limit must be at most 10000, got 20000",
        ),
        (
            "/api/v1/node-summary?limit=many",
            "limit must be a whole number, got \"many\"",
        ),
        (
            "/api/v1/node-summary?page_token=7",
            "page_token \"7\" is not a token returned by ListEdges",
        ),
        (
            "/api/v1/zones?zone=a",
            "unknown parameter \"zone\": expected one of network",
        ),
        (
            "/api/v1/zones?network=both",
            "unknown network \"both\": expected one of pod, host, any",
        ),
    ] {
        let r = get(s.http_addr, path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.json()["error"], msg, "{path}");
    }
    s.shutdown().await;
}
