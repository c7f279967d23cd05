//! Node conditions end to end: a real aggregator with discovery on a mocked API server
//! (`echomesh_testkit::k8s::mock_api`, nodes a-d with pod agents), simulated agents over real
//! gRPC where d is cut off, and the node-condition writes recorded by
//! `echomesh_testkit::k8s::write_api`: the diagnosis's verdict reaches the Node as a condition and
//! an Event, and `/metrics` counts the writes.
//!
//! Waits are "until the write arrives" with the generous [`SOON`] bound, never fixed sleeps.

use std::time::Duration;

use echomesh_testkit::aggregator::scenarios::{connected_agents_at, report_with_node_cut};
use echomesh_testkit::http::get;
use echomesh_testkit::k8s::fixtures;
use echomesh_testkit::k8s::mock_api::MockApi;
use echomesh_testkit::k8s::write_api::WriteApi;
use echomesh_testkit::{SOON, SimAgent, TestAggregator};

const NODES: [&str; 4] = ["a", "b", "c", "d"];

fn pod_ip(i: usize) -> String {
    format!("10.244.{i}.10")
}

async fn cluster() -> (TestAggregator, WriteApi, Vec<SimAgent>) {
    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    for (i, n) in NODES.iter().enumerate() {
        nodes.push(fixtures::node(n, &[&format!("192.168.0.{}", i + 1)]));
        pods.push(fixtures::agent_pod(n, false, &[&pod_ip(i)]));
    }
    let (_api, client) = MockApi::start(nodes.clone(), pods);
    let (writes, wclient) = WriteApi::start(nodes);
    let s =
        TestAggregator::start_with_node_conditions(client, wclient, Duration::from_secs(1)).await;
    let agents = connected_agents_at(&s, &NODES, pod_ip).await;
    (s, writes, agents)
}

/// Three report rounds in which every probe to and from d is lost.
async fn cut_d(agents: &mut [SimAgent], first_round: u64) {
    for _round in first_round..first_round + 3 {
        report_with_node_cut(agents, &NODES, "d", |_| 150).await;
    }
}

/// Waits until `writes` has at least `n` PATCH requests; returns them.
async fn patches(writes: &WriteApi, n: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let p: Vec<serde_json::Value> = writes
            .writes()
            .into_iter()
            .filter(|w| w.method == "PATCH")
            .map(|w| {
                assert_eq!(w.path, "/api/v1/nodes/d/status", "only d is blamed");
                w.body
            })
            .collect();
        if p.len() >= n {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} patches expected, have {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cut_node_gets_the_condition_and_an_event_and_metrics_count_them() {
    let (s, writes, mut agents) = cluster().await;
    cut_d(&mut agents, 1).await;
    let p = patches(&writes, 1).await;
    let c = &p[0]["status"]["conditions"][0];
    assert_eq!(c["type"], "EchomeshNetworkProblem");
    assert_eq!(c["status"], "True");
    assert!(
        c["reason"] == "NodeUnreachable" || c["reason"] == "PodNetworkBroken",
        "{c}"
    );
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains(" d: ") && m.contains("failing")),
        "{c}"
    );
    let events: Vec<_> = writes
        .writes()
        .into_iter()
        .filter(|w| w.method == "POST")
        .collect();
    assert!(
        events.len() == 1 || events.is_empty(),
        "at most one event so far: {events:?}"
    );

    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let m = get(s.http_addr, "/metrics").await.body;
        if m.contains("echomesh_node_condition_writes_total{object=\"event\",result=\"ok\"} 1") {
            assert!(
                m.contains(
                    "echomesh_node_condition_writes_total{object=\"condition\",result=\"ok\"} 1"
                ),
                "{m}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still blamed a few cycles later: nothing more is written.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(patches(&writes, 1).await.len(), 1);

    // d is reachable again: healthy rounds until the edges clear, then the condition goes False.
    let mut round = 4;
    let deadline = tokio::time::Instant::now() + SOON;
    while writes
        .writes()
        .iter()
        .filter(|w| w.method == "PATCH")
        .count()
        < 2
    {
        assert!(tokio::time::Instant::now() < deadline, "never healed");
        for a in &mut agents {
            assert_eq!(a.report_acked(100, 0, 150).await, round);
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = patches(&writes, 2).await;
    let c = &p[1]["status"]["conditions"][0];
    assert_eq!(c["status"], "False", "{c}");
    assert_eq!(c["reason"], "NetworkHealthy", "{c}");
    s.shutdown().await;
}

#[tokio::test]
async fn without_the_flag_nothing_is_written_and_no_series_exported() {
    let (nodes, pods) = fixtures::three_nodes();
    let (_api, client) = MockApi::start(nodes, pods);
    let s = TestAggregator::start_with_kube(client, |_| {}).await;
    let m = get(s.http_addr, "/metrics").await.body;
    assert!(!m.contains("echomesh_node_condition_writes"), "{m}");
    s.shutdown().await;
}
