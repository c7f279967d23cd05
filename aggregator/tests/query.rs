//! GraphService, reflection, health and the HTTP probes over real sockets.

use std::time::Duration;

use echomesh_proto::Histogram;
use echomesh_proto::v1::{self, event::Kind};
use echomesh_testkit::aggregator::scenarios::connected_agents;
use echomesh_testkit::http::get;
use echomesh_testkit::sim::message_of_hello;
use echomesh_testkit::{SOON, SimAgent, TestAggregator};
use tokio_stream::StreamExt as _;
use tonic::Code;

/// Agents a, b and c, one report each merged: c sees 50% loss everywhere, and the RTTs grow
/// from a to c.
async fn filled() -> (TestAggregator, Vec<SimAgent>) {
    let s = TestAggregator::start(|_| {}).await;
    let mut agents = connected_agents(&s, &["a", "b", "c"]).await;
    for (i, a) in agents.iter_mut().enumerate() {
        let lost = if i == 2 { 50 } else { 0 };
        a.report_acked(100, lost, 100 * (i as u64 + 1)).await;
    }
    (s, agents)
}

#[tokio::test]
async fn bad_filters_and_page_tokens_are_invalid_argument() {
    let (s, _agents) = filled().await;
    let mut g = s.graph_client().await;
    let cases = [
        (
            v1::ListEdgesRequest {
                page_token: "bogus".into(),
                ..Default::default()
            },
            "page_token \"bogus\" is not a token returned by ListEdges",
        ),
        (
            v1::ListEdgesRequest {
                min_loss_pct: 150.0,
                ..Default::default()
            },
            "min_loss_pct must be within 0..=100, got 150",
        ),
        (
            v1::ListEdgesRequest {
                states: vec![99],
                ..Default::default()
            },
            "states: unknown value 99",
        ),
        (
            v1::ListEdgesRequest {
                limit: 1_000_000,
                ..Default::default()
            },
            "limit must be at most 10000, got 1000000",
        ),
    ];
    for (req, msg) in cases {
        let e = g.list_edges(req).await.expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.message(), msg);
    }
    let e = g
        .percentiles(v1::PercentilesRequest {
            quantiles: vec![1.5],
            ..Default::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.message(), "quantiles must be within 0..=1, got 1.5");
    let e = g
        .get_edge(v1::GetEdgeRequest {
            source_node: "nope".into(),
            target: "a".into(),
            ..Default::default()
        })
        .await
        .expect_err("missing");
    assert_eq!(e.code(), Code::NotFound);
    s.shutdown().await;
}

/// Agent `a` has the higher median, agent `b` the higher tail, so the two sorts disagree.
#[tokio::test]
async fn sort_by_p50_is_not_sort_by_p99() {
    let s = TestAggregator::start(|_| {}).await;
    let mut a = SimAgent::connect(s.channel().await, "a", "127.0.0.1").await;
    let mut b = SimAgent::connect(s.channel().await, "b", "127.0.0.2").await;
    let shape = |median_us: u64, tail_us: u64| {
        let mut h = Histogram::new();
        for i in 0..100 {
            h.record(Duration::from_micros(if i < 95 {
                median_us
            } else {
                tail_us
            }));
        }
        h
    };
    for (agent, h) in [(&mut a, shape(2_000, 2_100)), (&mut b, shape(500, 9_000))] {
        agent.wait_assignment(1).await;
        let r = agent.report(100, 0, &h);
        agent.send_report_acked(r).await;
    }
    let g = s.graph_client().await;
    let first = |sort: v1::EdgeSort| {
        let mut g = g.clone();
        async move {
            g.list_edges(v1::ListEdgesRequest {
                sort: sort as i32,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner()
            .edges[0]
                .source_node
                .clone()
        }
    };
    assert_eq!(first(v1::EdgeSort::P50).await, "a");
    assert_eq!(first(v1::EdgeSort::P99).await, "b");
    s.shutdown().await;
}

#[tokio::test]
async fn list_edges_filters_sorts_and_pages() {
    let (s, _agents) = filled().await;
    let mut g = s.graph_client().await;
    let worst = g
        .list_edges(v1::ListEdgesRequest {
            sort: v1::EdgeSort::Loss as i32,
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(worst.total_matched, 6);
    assert_eq!(worst.edges.len(), 2);
    assert!(worst.edges.iter().all(|e| e.source_node == "c"));
    assert_eq!(worst.next_page_token, "off:2");
    let rest = g
        .list_edges(v1::ListEdgesRequest {
            sort: v1::EdgeSort::Loss as i32,
            page_token: worst.next_page_token,
            ..Default::default()
        })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(rest.edges.len(), 4);
    assert!(rest.next_page_token.is_empty());
    let lossy = g
        .list_edges(v1::ListEdgesRequest {
            min_loss_pct: 10.0,
            ..Default::default()
        })
        .await
        .expect("filter")
        .into_inner();
    assert_eq!(lossy.edges.len(), 2);
    assert!(lossy.edges.iter().all(
        |e| e.state == v1::EdgeState::Down as i32 || e.state == v1::EdgeState::Degraded as i32
    ));
    let to_a = g
        .list_edges(v1::ListEdgesRequest {
            target_node: "a".into(),
            ..Default::default()
        })
        .await
        .expect("filter")
        .into_inner();
    assert_eq!(to_a.edges.len(), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn watch_events_starts_with_a_snapshot_then_streams_changes() {
    let (s, mut agents) = filled().await;
    let mut w = s.watch_events(true).await;
    let mut snap = 0;
    loop {
        let ev = tokio::time::timeout(SOON, w.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        if ev.kind == Kind::SnapshotDone as i32 {
            break;
        }
        snap += 1;
    }
    assert_eq!(snap, 6);
    // a -> * goes fully lost twice: DOWN after raise_after = 2 windows.
    for seq in 2..=3 {
        assert_eq!(agents[0].report_acked(10, 10, 100).await, seq);
    }
    let ev = tokio::time::timeout(SOON, w.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ok");
    assert_eq!(ev.kind, Kind::EdgeState as i32);
    assert_eq!(ev.source_node, "a");
    assert_eq!(ev.to, v1::EdgeState::Down as i32);
    s.shutdown().await;
}

#[tokio::test]
async fn reflection_lists_the_services_and_health_answers() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let s = TestAggregator::start(|_| {}).await;
    let mut r = ServerReflectionClient::new(s.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = r
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .expect("reflection")
        .into_inner();
    let msg = resp.next().await.expect("one").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected {msg:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "echomesh.v1.AgentService",
        "echomesh.v1.GraphService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    // v1alpha is served too (older grpcurl).
    let mut alpha =
        tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(
            s.channel().await,
        );
    let req = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut resp = alpha
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .expect("v1alpha")
        .into_inner();
    assert!(resp.next().await.expect("one").is_ok());

    let mut h = HealthClient::new(s.channel().await);
    let st = h
        .check(HealthCheckRequest {
            service: "echomesh.v1.GraphService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(st.status, 1, "SERVING");
    s.shutdown().await;
}

#[tokio::test]
async fn healthz_and_readyz() {
    let s = TestAggregator::start(|_| {}).await;
    assert_eq!(get(s.http_addr, "/healthz").await.status, 200);
    assert_eq!(get(s.http_addr, "/readyz").await.status, 200);
    assert_eq!(get(s.http_addr, "/nope").await.status, 404);
    s.shutdown().await;
}

/// `node/network[/address]` names in GetEdge and ListEdges, and names that match nothing.
#[tokio::test]
async fn names_carry_the_network_and_the_address() {
    let s = TestAggregator::start(|_| {}).await;
    let hello = |node: &str, net: v1::Network, addrs: &[&str]| {
        let mut h = echomesh_testkit::sim::hello(node, net, addrs[0]);
        h.addresses = addrs.iter().map(|a| (*a).to_string()).collect();
        message_of_hello(h)
    };
    let specs = [
        ("a", v1::Network::Host, &["127.0.1.1"][..], 3),
        ("b", v1::Network::Host, &["127.0.1.2"][..], 3),
        ("b", v1::Network::Pod, &["127.0.0.2", "::2"][..], 2),
    ];
    let mut agents = Vec::new();
    for (node, net, addrs, _) in specs {
        agents.push(
            SimAgent::open(s.channel().await, hello(node, net, addrs))
                .await
                .expect("session"),
        );
    }
    for (a, (_, _, _, n)) in agents.iter_mut().zip(specs) {
        a.wait_assignment(n).await;
    }
    for a in &mut agents {
        a.report_acked(10, 0, 100).await;
    }
    let mut g = s.graph_client().await;
    let get = |src: &str, dst: &str| v1::GetEdgeRequest {
        source_node: src.into(),
        target: dst.into(),
        ..Default::default()
    };
    // A host-network edge: the source has no pod agent at all.
    let e = g
        .get_edge(get("a/host", "b/host"))
        .await
        .expect("host edge")
        .into_inner();
    assert_eq!(
        (
            e.source_network,
            e.target_network,
            e.target_address.as_str()
        ),
        (
            v1::Network::Host as i32,
            v1::Network::Host as i32,
            "127.0.1.2"
        )
    );
    for addr in ["127.0.0.2", "::2"] {
        let e = g
            .get_edge(get("a", &format!("b/pod/{addr}")))
            .await
            .expect("by address")
            .into_inner();
        assert_eq!(e.target_address, addr);
    }
    // An address picks the agent that has it when the network is left open.
    let e = g
        .get_edge(get("b/any/127.0.1.2", "a"))
        .await
        .expect("source by address")
        .into_inner();
    assert_eq!(e.source_network, v1::Network::Host as i32);
    let list = |src: &str, dst: &str| v1::ListEdgesRequest {
        source_node: src.into(),
        target_node: dst.into(),
        ..Default::default()
    };
    let r = g
        .list_edges(list("a/host", "b/pod/::2"))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(r.edges.len(), 1);
    assert_eq!(r.edges[0].target_address, "::2");
    let r = g
        .list_edges(list("", "b"))
        .await
        .expect("list")
        .into_inner();
    // a/host to b/host and to both families of b/pod, b/host to both of b/pod, b/pod to b/host.
    assert_eq!(r.total_matched, 6, "{r:?}");
    // Names that match nothing are NOT_FOUND, not an empty page.
    for (req, msg) in [
        (list("nosuch", ""), "no agent on node \"nosuch\""),
        (
            list("a/pod", ""),
            "no agent on node \"a\" in the pod network",
        ),
        (list("a/host/10.0.0.9", ""), "no agent \"a/host/10.0.0.9\""),
        (list("", "zz"), "no target \"zz\""),
        (list("", "b/host/::2"), "no target \"b/host/::2\""),
    ] {
        let e = g.list_edges(req).await.expect_err("not found");
        assert_eq!(e.code(), Code::NotFound);
        assert_eq!(e.message(), msg);
    }
    let e = g
        .get_edge(get("a/pod", "b"))
        .await
        .expect_err("no pod agent on a");
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message(), "no agent on node \"a\" in the pod network");
    // Percentiles of one agent by name.
    let p = g
        .percentiles(v1::PercentilesRequest {
            scope: v1::Scope::Node as i32,
            node: "b/host".into(),
            ..Default::default()
        })
        .await
        .expect("node percentiles")
        .into_inner();
    assert_eq!(p.edges, 3);
    let e = g
        .percentiles(v1::PercentilesRequest {
            scope: v1::Scope::Node as i32,
            node: "a/pod".into(),
            ..Default::default()
        })
        .await
        .expect_err("no pod agent on a");
    assert_eq!(e.code(), Code::NotFound);
    // Malformed names are InvalidArgument with the reason.
    for (req, msg) in [
        (
            list("a/overlay", ""),
            "source_node \"a/overlay\": unknown network \"overlay\": use pod, host or any",
        ),
        (
            list("", "b/pod/x"),
            "target_node \"b/pod/x\": \"x\" is not an IP address",
        ),
        (
            v1::ListEdgesRequest {
                network: v1::Network::Pod as i32,
                ..list("a/host", "")
            },
            "source_node \"a/host\" names the host network but the request asks for pod",
        ),
    ] {
        let e = g.list_edges(req).await.expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.message(), msg);
    }
    s.shutdown().await;
}

#[tokio::test]
async fn nodes_and_events_say_how_the_edges_are() {
    let (s, _agents) = filled().await;
    let nodes = s.nodes().await;
    for n in &nodes {
        assert_eq!(
            n.edges_up + n.edges_degraded + n.edges_down + n.edges_unknown,
            n.edges_out,
            "{n:?}"
        );
    }
    assert_eq!(nodes[0].edges_up, 2, "{:?}", nodes[0]);
    let mut w = s.watch_events(true).await;
    let ev = tokio::time::timeout(SOON, w.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ok");
    assert_eq!(ev.target_network, v1::Network::Pod as i32);
    s.shutdown().await;
}
