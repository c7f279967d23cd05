//! An agent aimed by someone else: the real run loop, a real aggregator on 127.0.0.1 and a
//! recording engine (no raw sockets, so no root). A forged Hello announcing a public address
//! makes the aggregator assign it to the agent, which refuses the assignment as a whole, says
//! why, counts it, keeps probing its last good pinglist, and never sends a packet to the forged
//! address.

mod support;

use std::time::Duration;

use echomesh_agent::metrics::AgentMetrics;
use echomesh_agent::report::{self, GuardArgs, RunArgs, UrlConnector};
use echomesh_proto::v1::{self, EdgeState};
use echomesh_testkit::{SimAgent, TestAggregator, eventually::eventually};

use support::engine::{FakeStarter, Shared, lock};
use support::{POLL, Running, SOON};

/// An aggregator that reports every 200 ms and assigns 20 ms after a change.
async fn start_agg() -> TestAggregator {
    TestAggregator::start(|c| {
        c.report_interval = Duration::from_millis(200);
        c.assign_debounce = Duration::from_millis(20);
    })
    .await
}

/// The real run loop as agent `node` at 10.0.0.1 (the default --allow-cidr), over the fake engine
/// logging to `log`.
fn start_agent(agg: &TestAggregator, node: &str, log: &Shared, metrics: &AgentMetrics) -> Running {
    let args = RunArgs {
        guard: GuardArgs::default(),
        ..support::run_args(&agg.url(), node, "10.0.0.1")
    };
    let connector = UrlConnector::new(&args.aggregator).expect("url");
    let (starter, metrics) = (FakeStarter::new(log), metrics.clone());
    Running::spawn(|shutdown| async move {
        report::run_over(&args, connector, starter, metrics, shutdown.wait()).await
    })
}

/// The edges `node` probes, or `None` while the query fails.
async fn edges_from(agg: &TestAggregator, node: &str) -> Option<Vec<v1::Edge>> {
    agg.graph_client()
        .await
        .list_edges(v1::ListEdgesRequest {
            source_node: node.into(),
            ..v1::ListEdgesRequest::default()
        })
        .await
        .ok()
        .map(|r| r.into_inner().edges)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_public_peer_cannot_aim_the_agent() {
    let agg = start_agg().await;
    let log = Shared::default();
    let metrics = AgentMetrics::new();
    let agent = start_agent(&agg, "real", &log, &metrics);

    // A genuine peer: the agent probes it and its edge comes UP.
    let mut peer = SimAgent::connect(agg.channel().await, "peer", "10.0.0.2").await;
    peer.wait_assignment(1).await;
    let edge_up = || async {
        // After the refusal the aggregator lists the forged target too (UNKNOWN: the agent
        // never probes it); the genuine one is what matters.
        edges_from(&agg, "real").await.is_some_and(|edges| {
            edges.iter().any(|e| {
                e.target_node == "peer" && e.state == EdgeState::Up as i32 && e.received_total > 0
            })
        })
    };
    eventually("the real agent's edge UP", SOON, POLL, edge_up).await;

    // A forged peer announcing a public address (the aggregator accepts unicast; the agent's
    // --allow-cidr decides).
    let _forged = SimAgent::connect(agg.channel().await, "forged", "198.51.100.7").await;
    let want = "target 198.51.100.7 is outside --allow-cidr (10.0.0.0/8, 172.16.0.0/12, \
                192.168.0.0/16, 100.64.0.0/10, fc00::/7, 10.0.0.1/32)";
    eventually("echomesh nodes shows the refusal", SOON, POLL, || async {
        agg.nodes()
            .await
            .iter()
            .any(|n| n.name == "real" && n.assignment_rejected == want)
    })
    .await;
    assert!(metrics.assignments_rejected() >= 1);
    let scrape = echomesh_testkit::http::get(agg.http_addr, "/metrics")
        .await
        .body;
    assert!(
        scrape.lines().any(|l| l
            .starts_with("echomesh_ingest_errors_total{reason=\"assignment_rejected\"} ")
            && !l.ends_with(" 0")),
        "{scrape}"
    );
    assert!(metrics.render(false).lines().any(|l| {
        l.starts_with("echomesh_agent_assignments_rejected_total ") && !l.ends_with(" 0")
    }),);

    // The agent kept running its last good pinglist: the genuine edge stays UP and keeps
    // growing, and the forged address never reached the engine.
    let before = lock(&log).given().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    eventually("the genuine edge still UP", SOON, POLL, edge_up).await;
    let given = lock(&log).given();
    assert!(
        given
            .iter()
            .flatten()
            .all(|t| t.addr.to_string() != "198.51.100.7"),
        "{given:?}"
    );
    assert_eq!(
        given.len(),
        before,
        "no assignment reached the engine since"
    );
    assert!(
        !agent.is_finished(),
        "a refused assignment never stops the agent"
    );
    agent.stop().await;
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_engine_died_turns_its_edges_unknown_and_fails_healthz() {
    let agg = start_agg().await;
    let metrics = AgentMetrics::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let health_addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(echomesh_agent::metrics::serve(listener, metrics.clone()));
    let log = Shared::default();
    let agent = start_agent(&agg, "dying", &log, &metrics);
    let mut peer = SimAgent::connect(agg.channel().await, "peer", "10.0.0.2").await;
    peer.wait_assignment(1).await;
    let state = || async {
        edges_from(&agg, "dying")
            .await
            .and_then(|edges| edges.first().map(|e| e.state))
    };
    eventually("the edge UP", SOON, POLL, || async {
        state().await == Some(EdgeState::Up as i32)
    })
    .await;
    assert_eq!(
        echomesh_testkit::http::get(health_addr, "/healthz")
            .await
            .status,
        200
    );

    lock(&log).stopped = true;
    eventually("the edge UNKNOWN", SOON, POLL, || async {
        state().await == Some(EdgeState::Unknown as i32)
    })
    .await;
    let r = echomesh_testkit::http::get(health_addr, "/healthz").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "the probe engine stopped\n")
    );
    agent.stop().await;
    server.abort();
    agg.shutdown().await;
}
