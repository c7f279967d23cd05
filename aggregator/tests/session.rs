//! AgentService over real gRPC: the graph fills, and every bad input of the protocol.

use std::time::Duration;

use echomesh_proto::v1::{self, AgentMessage, EdgeState, agent_message, event::Kind};
use echomesh_testkit::aggregator::scenarios::connected_agents;
use echomesh_testkit::sim::{hello_message, message_of_hello};
use echomesh_testkit::tcp::closed_within;
use echomesh_testkit::{SOON, SimAgent, TestAggregator, soon};
use tokio::io::AsyncWriteExt;
use tonic::Code;

/// Agents a, b and c (127.0.0.1 to .3), each assigned the other two.
async fn three_agents(s: &TestAggregator) -> Vec<SimAgent> {
    connected_agents(s, &["a", "b", "c"]).await
}

#[tokio::test]
async fn graph_fills_from_reports() {
    let s = TestAggregator::start(|_| {}).await;
    let mut agents = three_agents(&s).await;
    for a in &mut agents {
        a.report_acked(100, 0, 250).await;
    }
    let mut g = s.graph_client().await;
    let sum = g
        .summary(v1::SummaryRequest {})
        .await
        .expect("summary")
        .into_inner();
    assert_eq!(sum.agents_connected, 3);
    assert_eq!(sum.edges, 6);
    assert_eq!(sum.edges_up, 6);
    assert_eq!(sum.reports_merged, 3);

    let edges = g
        .list_edges(v1::ListEdgesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(edges.edges.len(), 6);
    assert!(edges.edges.iter().all(|e| e.state == EdgeState::Up as i32));
    let e = g
        .get_edge(v1::GetEdgeRequest {
            source_node: "a".into(),
            target: "c".into(),
            ..Default::default()
        })
        .await
        .expect("edge")
        .into_inner();
    assert_eq!(e.target_address, "127.0.0.3");
    assert_eq!(e.sent_total, 100);
    assert!((200.0..300.0).contains(&e.p50_us), "{}", e.p50_us);

    let m = g
        .matrix(v1::MatrixRequest {
            metric: v1::MatrixMetric::P50 as i32,
            network: 0,
            zone: None,
        })
        .await
        .expect("matrix")
        .into_inner();
    assert_eq!(m.nodes, ["a", "b", "c"]);
    assert!(m.values[0].is_nan(), "no self edge");
    assert!(m.values[1] > 200.0);

    let p = g
        .percentiles(v1::PercentilesRequest {
            quantiles: vec![0.5, 0.99],
            ..Default::default()
        })
        .await
        .expect("pct")
        .into_inner();
    assert_eq!(p.samples, 600);
    assert!(
        (200.0..300.0).contains(&p.values_us[1]),
        "{:?}",
        p.values_us
    );

    let nodes = g
        .list_nodes(v1::ListNodesRequest {})
        .await
        .expect("nodes")
        .into_inner();
    assert_eq!(nodes.nodes.len(), 3);
    assert!(nodes.nodes.iter().all(|n| n.connected && n.edges_out == 2));
    s.shutdown().await;
}

#[tokio::test]
async fn report_before_hello_is_failed_precondition() {
    let s = TestAggregator::start(|_| {}).await;
    let first = AgentMessage {
        msg: Some(agent_message::Msg::Report(v1::Report {
            seq: 1,
            ..Default::default()
        })),
    };
    let mut a = SimAgent::open(s.channel().await, first)
        .await
        .expect("open");
    let st = a.wait_error().await;
    assert_eq!(st.code(), Code::FailedPrecondition);
    assert_eq!(
        st.message(),
        "the first message of a session must be Hello, got Report"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn bad_hello_is_invalid_argument() {
    let s = TestAggregator::start(|_| {}).await;
    let mut a = SimAgent::open(
        s.channel().await,
        hello_message("n", v1::Network::Pod, "not-an-ip"),
    )
    .await
    .expect("open");
    let st = a.wait_error().await;
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(
        st.message().contains("not an IP address"),
        "{}",
        st.message()
    );
    s.shutdown().await;
}

#[tokio::test]
async fn unknown_target_ids_are_counted_and_ignored() {
    let s = TestAggregator::start(|_| {}).await;
    let mut agents = three_agents(&s).await;
    // Within the assignment's size (a larger report is refused whole: tests/adversarial.rs), an
    // entry naming a target that is not assigned is counted and skipped.
    let mut r = agents[0].make_report(10, 0, 100);
    r.targets[1] = v1::TargetStats {
        target_id: 12345,
        slot: 1,
        sent: 10,
        ..Default::default()
    };
    agents[0].send_report(r).await;
    agents[0].wait_ack(1).await;
    let sum = s.summary().await;
    assert_eq!(sum.unknown_targets, 1);
    assert_eq!(sum.edges_up, 1);
    s.shutdown().await;
}

#[tokio::test]
async fn oversized_message_is_resource_exhausted_and_other_streams_continue() {
    let s = TestAggregator::start(|c| c.max_message_bytes = 64 * 1024).await;
    let mut agents = three_agents(&s).await;
    let mut big = agents[0].make_report(10, 0, 100);
    let filler = big.targets[0].clone();
    big.targets = vec![filler; 5000];
    agents[0].send_report(big).await;
    let st = agents[0].wait_error().await;
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    assert!(st.message().contains("too large"), "{}", st.message());
    // The other sessions are unaffected.
    let r = agents[1].make_report(10, 0, 100);
    agents[1].send_report(r).await;
    agents[1].wait_ack(1).await;
    s.shutdown().await;
}

#[tokio::test]
async fn duplicate_reports_are_acked_and_merged_once() {
    let s = TestAggregator::start(|_| {}).await;
    let mut agents = three_agents(&s).await;
    let r = agents[0].make_report(10, 0, 100);
    agents[0].send_report(r.clone()).await;
    agents[0].wait_ack(1).await;
    agents[0].send_report(r).await;
    agents[0].wait_ack(1).await;
    let sum = s.summary().await;
    assert_eq!(sum.reports_merged, 1);
    assert_eq!(sum.reports_duplicate, 1);
    let e = s.edge("a", "b").await;
    assert_eq!(e.sent_total, 10);
    s.shutdown().await;
}

#[tokio::test]
async fn newer_session_for_same_node_wins_and_an_event_says_so() {
    let s = TestAggregator::start(|_| {}).await;
    let mut watch = s.watch_events(false).await;
    let mut old = SimAgent::connect(s.channel().await, "a", "127.0.0.1").await;
    let _first = tokio::time::timeout(SOON, watch.message())
        .await
        .expect("event in time");
    let _new = SimAgent::connect(s.channel().await, "a", "127.0.0.1").await;
    let st = old.wait_error().await;
    assert_eq!(st.code(), Code::Aborted);
    assert!(st.message().contains("newer session"), "{}", st.message());
    loop {
        let ev = tokio::time::timeout(SOON, watch.message())
            .await
            .expect("event in time")
            .expect("stream ok")
            .expect("open");
        if ev.kind == Kind::AgentReplaced as i32 {
            assert_eq!(ev.source_node, "a");
            break;
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn stopped_agent_edges_go_unknown() {
    let s = TestAggregator::start(|c| c.report_interval = Duration::from_millis(200)).await;
    let mut agents = three_agents(&s).await;
    let r = agents[0].make_report(10, 0, 100);
    // Before the report is even sent: UNKNOWN cannot come sooner than 3 intervals after this.
    let started = tokio::time::Instant::now();
    agents[0].send_report(r).await;
    agents[0].wait_ack(1).await;
    assert_eq!(s.edge("a", "b").await.state, EdgeState::Up as i32);
    // Agent a stops reporting (its session stays open): UNKNOWN after 3 intervals + a sweep.
    soon("edge a->b goes UNKNOWN", || async {
        s.edge("a", "b").await.state == EdgeState::Unknown as i32
    })
    .await;
    // 3 x 200 ms, less one 10 ms tick of clock rounding.
    assert!(started.elapsed() >= Duration::from_millis(590));
    s.shutdown().await;
}

#[tokio::test]
async fn garbage_bytes_close_the_connection_and_the_server_keeps_serving() {
    let s = TestAggregator::start(|_| {}).await;
    let mut sock = tokio::net::TcpStream::connect(s.grpc_addr)
        .await
        .expect("connect");
    sock.write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(1000))
        .await
        .expect("write");
    assert!(
        closed_within(&mut sock, SOON).await,
        "server closes a garbage connection"
    );
    assert_eq!(s.summary().await.agents_connected, 0, "still serving");
    s.shutdown().await;
}

#[tokio::test]
async fn agents_can_use_the_unix_socket() {
    let dir = std::env::temp_dir().join(format!("echomesh-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("agg.sock");
    let p2 = path.clone();
    let s = TestAggregator::start(move |c| c.agent_socket = Some(p2)).await;
    let ch = echomesh_proto_unix_channel(&path).await;
    let mut a = SimAgent::connect(ch, "u", "127.0.0.9").await;
    let _b = SimAgent::connect(s.channel().await, "v", "127.0.0.10").await;
    a.wait_assignment(1).await;
    soon("both agents connected", || {
        let g = s.graph.clone();
        async move { g.agents().len() == 2 }
    })
    .await;
    s.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn echomesh_proto_unix_channel(path: &std::path::Path) -> tonic::transport::Channel {
    let path = path.to_path_buf();
    tonic::transport::Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .expect("unix connect")
}

#[tokio::test]
async fn a_hello_zone_reaches_the_zone_map_and_a_bad_one_is_refused() {
    let s = TestAggregator::start(|_| {}).await;
    let mut h = echomesh_testkit::sim::hello("a", v1::Network::Pod, "127.0.0.1");
    h.zone = "zone-a".into();
    let _a = SimAgent::open(s.channel().await, message_of_hello(h.clone()))
        .await
        .expect("session");
    let graph = s.graph.clone();
    soon("the Hello's zone in the zone map", || {
        let g = graph.clone();
        async move { g.node_zones().get("a").map(|z| z.as_ref()) == Some("zone-a") }
    })
    .await;
    h.node = "b".into();
    h.zone = "zone\u{1b}[31m".into();
    let mut b = SimAgent::open(s.channel().await, message_of_hello(h))
        .await
        .expect("stream opens");
    let err = b.next().await.expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("zone must be at most 63 printable"),
        "{err}"
    );
    assert!(!s.graph.node_zones().contains_key("b"));
}
