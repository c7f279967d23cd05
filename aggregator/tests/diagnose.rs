//! `Diagnose` over real gRPC, the JSON API and `/metrics`, on a cluster of simulated agents where
//! one node is cut off: every surface names that node, not its 24 edges (every agent probes
//! every other address, in both networks).

use echomesh_proto::v1;
use echomesh_testkit::TestAggregator;
use echomesh_testkit::aggregator::scenarios::cluster_with_broken_node_on_both_networks;
use echomesh_testkit::http::get;

#[tokio::test]
async fn a_cut_node_is_one_culprit_on_every_surface() {
    let (s, _agents) = cluster_with_broken_node_on_both_networks().await;
    let mut c = s.graph_client().await;

    let d = c
        .diagnose(v1::DiagnoseRequest::default())
        .await
        .expect("diagnose")
        .into_inner();
    assert!(!d.healthy, "{d:?}");
    assert_eq!(d.culprits.len(), 1, "{d:?}");
    let k = &d.culprits[0];
    assert_eq!(k.kind, v1::CulpritKind::Node as i32, "{k:?}");
    assert_eq!(k.node, "d");
    assert_eq!(k.network, v1::Network::Unspecified as i32, "both networks");
    assert_eq!(k.direction, v1::Direction::Both as i32);
    assert_eq!((k.failing_edges, k.total_edges), (24, 24), "{k:?}");
    assert!(k.confidence > 0.9, "{k:?}");
    assert!(k.since_unix_ms > 0 && k.since_unix_ms <= d.generated_at_unix_ms);
    assert!(!k.agent_silent, "d's agents still report: {k:?}");
    assert_eq!(
        (d.failing_edges, d.explained_edges, d.unexplained_edges),
        (24, 24, 0)
    );
    assert!(
        d.summary
            .starts_with("1 culprit: node d: 24/24 edges both failing (any network)"),
        "{}",
        d.summary
    );

    // One network: the same node, in that network.
    let pod = c
        .diagnose(v1::DiagnoseRequest {
            network: v1::Network::Pod as i32,
            limit: 0,
        })
        .await
        .expect("diagnose pod")
        .into_inner();
    assert_eq!(pod.culprits.len(), 1, "{pod:?}");
    assert_eq!(pod.culprits[0].node, "d");
    assert_eq!(pod.culprits[0].network, v1::Network::Pod as i32);

    // Bad input is refused with the reason.
    let err = c
        .diagnose(v1::DiagnoseRequest {
            network: 0,
            limit: 10_001,
        })
        .await
        .expect_err("limit over the maximum");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("limit must be at most 10000"),
        "{err}"
    );
    let err = c
        .diagnose(v1::DiagnoseRequest {
            network: 9,
            limit: 0,
        })
        .await
        .expect_err("unknown network");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // The JSON API the page's banner reads.
    let r = get(s.http_addr, "/api/v1/diagnose?network=any").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["healthy"], false);
    assert_eq!(j["culprits"][0]["kind"], "node");
    assert_eq!(j["culprits"][0]["node"], "d");
    assert_eq!(j["culprits"][0]["direction"], "both");
    assert_eq!(j["culprits"][0]["network"], "any");
    assert_eq!(j["unexplained_edges"], 0);
    assert!(
        j["culprits"][0]["since"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z')),
        "{j}"
    );
    for bad in [
        "/api/v1/diagnose?network=both",
        "/api/v1/diagnose?limit=x",
        "/api/v1/diagnose?limit=20000",
        "/api/v1/diagnose?nodes=a",
    ] {
        let r = get(s.http_addr, bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{bad}: {}", r.body);
    }

    // /metrics: one node culprit, d blamed, nothing else.
    let m = get(s.http_addr, "/metrics").await.body;
    assert!(
        m.contains("echomesh_diagnosis_culprits{kind=\"node\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("echomesh_diagnosis_culprits{kind=\"link\"} 0"),
        "{m}"
    );
    assert!(m.contains("echomesh_node_blamed{node=\"d\"} 1"), "{m}");
    assert_eq!(m.matches("echomesh_node_blamed{").count(), 1, "{m}");
    assert!(m.contains("echomesh_diagnosis_unexplained_edges 0"), "{m}");
    s.shutdown().await;
}

#[tokio::test]
async fn an_empty_aggregator_is_healthy_in_one_line() {
    let s = TestAggregator::start(|_| {}).await;
    let d = s
        .graph_client()
        .await
        .diagnose(v1::DiagnoseRequest::default())
        .await
        .expect("diagnose")
        .into_inner();
    assert!(d.healthy);
    assert!(d.culprits.is_empty());
    assert_eq!(d.summary, "healthy: 0 nodes, 0 edges UP");
    let m = get(s.http_addr, "/metrics").await.body;
    for kind in [
        "node",
        "pod-network",
        "host-network",
        "zone",
        "link",
        "agent-silent",
        "view-stale",
    ] {
        assert!(
            m.contains(&format!("echomesh_diagnosis_culprits{{kind=\"{kind}\"}} 0")),
            "{kind}: {m}"
        );
    }
    assert!(!m.contains("echomesh_node_blamed{"), "{m}");
    s.shutdown().await;
}
