//! The harness itself: a TestAggregator with simulated agents completes the Session conversation,
//! and the handle stops the server both on `shutdown` and on drop.

use echomesh_testkit::aggregator::scenarios::cluster_with_broken_node;
use echomesh_testkit::http::get;
use echomesh_testkit::{SimAgent, TestAggregator, soon};

#[tokio::test]
async fn two_agents_are_assigned_each_other_and_their_reports_are_acked() {
    let s = TestAggregator::start(|_| {}).await;
    let mut a = SimAgent::connect(s.channel().await, "a", "127.0.0.1").await;
    let mut b = SimAgent::connect(s.channel().await, "b", "127.0.0.2").await;
    assert_eq!(a.wait_assignment(1).await.targets[0].node, "b");
    assert_eq!(b.wait_assignment(1).await.targets[0].node, "a");
    let r = a.make_report(10, 0, 300);
    assert_eq!(r.targets.len(), 1);
    a.send_report(r).await;
    a.wait_ack(1).await;
    let graph = s.graph.clone();
    soon("a's agent is in the graph", || async {
        graph.agents().len() == 2
    })
    .await;
    s.shutdown().await;
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let s = TestAggregator::start(|_| {}).await;
    let addr = s.grpc_addr;
    drop(s);
    soon("the gRPC port is closed", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
}

#[tokio::test]
async fn the_broken_node_scenario_serves_its_matrix() {
    let (s, _agents) = cluster_with_broken_node().await;
    let r = get(s.http_addr, "/api/v1/summary").await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.shutdown().await;
}
