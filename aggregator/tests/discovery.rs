//! Kubernetes discovery end to end: a real aggregator whose kube client talks to a mocked API
//! server (`echomesh_testkit::k8s::mock_api`), simulated agents over real gRPC, and assertions on the
//! assignments those agents receive.
//!
//! Every wait is "until this assignment arrives" with the generous [`SOON`] bound, never a
//! fixed sleep, so the tests do not flake on a loaded machine.

use std::time::Duration;

use echomesh_aggregator::graph::AgentKey;
use echomesh_aggregator::{Config, Graph};
use echomesh_proto::v1::{self, Network, aggregator_message};
use echomesh_testkit::http::{Reply, get};
use echomesh_testkit::k8s::fixtures::{self, NodeExt as _};
use echomesh_testkit::k8s::mock_api::{Fault, MockApi, Res};
use echomesh_testkit::sim::hello_message;
use echomesh_testkit::{SOON, SimAgent, TestAggregator, soon};

/// The mocked API server holding [`fixtures::three_nodes`], and a kube client for it.
fn three_node_api() -> (MockApi, kube::Client) {
    let (nodes, pods) = fixtures::three_nodes();
    MockApi::start(nodes, pods)
}

/// A real aggregator whose discovery talks to the mocked API server `api`.
struct Harness {
    api: MockApi,
    agg: TestAggregator,
}

impl Harness {
    async fn start(api: MockApi, client: kube::Client) -> Self {
        Self::start_with(api, client, |_| {}).await
    }

    async fn start_with(
        api: MockApi,
        client: kube::Client,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let agg = TestAggregator::start_with_kube(client, tweak).await;
        Self { api, agg }
    }

    /// The mocked cluster from [`fixtures::three_nodes`].
    async fn three_nodes() -> Self {
        let (api, client) = three_node_api();
        Self::start(api, client).await
    }

    /// [`Harness::three_nodes`] with a's pod agent connected and assigned [`A_SEES`].
    async fn three_nodes_with_a() -> (Self, SimAgent) {
        let h = Self::three_nodes().await;
        let mut a = h.agent("a", Network::Pod, "10.244.0.10").await;
        wait_targets(&mut a, &A_SEES).await;
        (h, a)
    }

    /// The edges measured by `node`'s agents, over the query API.
    async fn edges_from(&self, node: &str) -> Vec<v1::Edge> {
        v1::graph_service_client::GraphServiceClient::new(self.agg.channel().await)
            .list_edges(v1::ListEdgesRequest {
                source_node: node.into(),
                ..Default::default()
            })
            .await
            .expect("edges")
            .into_inner()
            .edges
    }

    async fn agent(&self, node: &str, network: Network, addr: &str) -> SimAgent {
        SimAgent::open(self.agg.channel().await, hello_message(node, network, addr))
            .await
            .expect("session")
    }

    async fn readyz(&self) -> Reply {
        get(self.agg.http_addr, "/readyz").await
    }

    async fn stop(self) {
        self.agg.shutdown().await;
    }
}

/// `node/network/address` of every target, `!` marking expected-down ones.
fn targets(a: &v1::Assignment) -> Vec<String> {
    a.targets
        .iter()
        .map(|t| {
            let net = if t.network == Network::Host as i32 {
                "host"
            } else {
                "pod"
            };
            let down = if t.expected_down { "!" } else { "" };
            format!("{down}{}/{net}/{}", t.node, t.address)
        })
        .collect()
}

/// Reads assignments until one whose targets are exactly `want` arrives.
async fn wait_targets(agent: &mut SimAgent, want: &[&str]) -> v1::Assignment {
    let mut last = Vec::new();
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(msg) = agent.next_within(left).await else {
            panic!("no assignment with targets {want:?} in time; last was {last:?}");
        };
        match msg.expect("stream ok").expect("stream open").msg {
            Some(aggregator_message::Msg::Assignment(a)) => {
                last = targets(&a);
                agent.assignment = Some(a.clone());
                if last == want {
                    return a;
                }
            }
            Some(aggregator_message::Msg::Ack(_)) | None => {}
        }
    }
}

/// The targets of each node of [`fixtures::three_nodes`] (and of a fourth, d): its pod agent's and
/// its host's address, as [`targets`] writes them; `_DOWN`, expected down.
const A: [&str; 2] = ["a/pod/10.244.0.10", "a/host/192.168.0.1"];
const B: [&str; 2] = ["b/pod/10.244.1.10", "b/host/192.168.0.2"];
const C: [&str; 2] = ["c/pod/10.244.2.10", "c/host/192.168.0.3"];
const D: [&str; 2] = ["d/pod/10.244.3.10", "d/host/192.168.0.4"];
const B_DOWN: [&str; 2] = ["!b/pod/10.244.1.10", "!b/host/192.168.0.2"];
const C_DOWN: [&str; 2] = ["!c/pod/10.244.2.10", "!c/host/192.168.0.3"];

/// What a's agents are assigned in the unchanged three-node cluster.
const A_SEES: [&str; 4] = [B[0], B[1], C[0], C[1]];

#[tokio::test]
async fn initial_list_assigns_every_agent_the_other_nodes_pod_and_host_addresses() {
    let h = Harness::three_nodes().await;
    let mut a_pod = h.agent("a", Network::Pod, "10.244.0.10").await;
    let mut a_host = h.agent("a", Network::Host, "192.168.0.1").await;
    let mut b_pod = h.agent("b", Network::Pod, "10.244.1.10").await;
    // Agents on c are not connected: c is still a target, because the model says it exists.
    let a = wait_targets(&mut a_pod, &A_SEES).await;
    assert!(a.targets.iter().all(|t| t.id != 0));
    wait_targets(&mut a_host, &A_SEES).await;
    wait_targets(&mut b_pod, &[A, C].concat()).await;
    soon("readyz is 200 once both kinds listed", || async {
        h.readyz().await.status == 200
    })
    .await;
    // Only reads, of exactly the two resources; pods by label in the agents' namespace.
    let reqs = h.api.requests();
    assert!(
        reqs.iter().any(|r| r.starts_with("GET /api/v1/nodes?")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/echomesh/pods?")),
        "{reqs:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn node_added_reaches_every_agent() {
    let h = Harness::three_nodes().await;
    let mut a = h.agent("a", Network::Pod, "10.244.0.10").await;
    let mut b = h.agent("b", Network::Host, "192.168.0.2").await;
    wait_targets(&mut a, &A_SEES).await;
    // A node no agent runs on (Fargate, virtual-kubelet, Windows) is not a target, and a second
    // InternalIP (another NIC) changes nothing.
    h.api.apply_node(
        fixtures::node("d", &["192.168.0.4"]).with_addresses("InternalIP", &["172.31.0.4"]),
    );
    // (b's cordon, applied after d, proves by its arrival that d was in the model meanwhile.)
    h.api
        .apply_node(fixtures::node("b", &["192.168.0.2"]).cordoned());
    wait_targets(&mut a, &[B_DOWN, C].concat()).await;
    h.api.apply_node(fixtures::node("b", &["192.168.0.2"]));
    // Its agents arrive: the pod agent with its IP, the host agent still starting (no IP yet).
    // The host address comes from the Node, once per family.
    h.api
        .apply_pod(fixtures::agent_pod("d", false, &["10.244.3.10"]));
    h.api.apply_pod(fixtures::pending_agent_pod("d", true));
    wait_targets(&mut a, &[B, C, D].concat()).await;
    wait_targets(&mut b, &[A, C, D].concat()).await;
    h.stop().await;
}

#[tokio::test]
async fn node_removed_leaves_every_pinglist() {
    let (h, mut a) = Harness::three_nodes_with_a().await;
    h.api.delete_node("c");
    h.api.delete_pod("echomesh-agent-pod-c");
    h.api.delete_pod("echomesh-agent-host-c");
    wait_targets(&mut a, &B).await;
    h.stop().await;
}

#[tokio::test]
async fn agent_pod_ip_change_is_reassigned() {
    let (h, mut a) = Harness::three_nodes_with_a().await;
    // The pod agent on b restarts with a new IP (same pod name, as a DaemonSet pod replaced in place
    // would not be, but the IP change is what matters).
    h.api
        .apply_pod(fixtures::agent_pod("b", false, &["10.244.1.99"]));
    wait_targets(&mut a, &["b/pod/10.244.1.99", B[1], C[0], C[1]]).await;
    h.stop().await;
}

#[tokio::test]
async fn agent_pod_gone_drops_its_target_and_its_edges_are_pruned_after_the_ttl() {
    let (api, client) = three_node_api();
    let h = Harness::start_with(api, client, |c| {
        c.report_interval = Duration::from_millis(100);
        c.agent_ttl = Duration::from_millis(300);
    })
    .await;
    let mut a = h.agent("a", Network::Pod, "10.244.0.10").await;
    let mut c = h.agent("c", Network::Pod, "10.244.2.10").await;
    wait_targets(&mut a, &A_SEES).await;
    wait_targets(&mut c, &[A, B].concat()).await;
    let c_key = AgentKey {
        node: "c".into(),
        network: Network::Pod,
    };
    assert_eq!(
        h.agg
            .graph
            .agent(&c_key)
            .map(|e| Graph::assigned_ids(&e).len()),
        Some(4)
    );
    // The pod is deleted: it leaves every pinglist, and its process (and session) ends.
    h.api.delete_pod("echomesh-agent-pod-c");
    drop(c);
    wait_targets(&mut a, &[B[0], B[1], C[1]]).await;
    // Its own edges go UNKNOWN (never reported) and the agent is pruned after the TTL.
    soon("c's agent and edges are pruned", || async {
        h.agg.graph.agent(&c_key).is_none()
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn only_planned_outages_mark_targets_expected_down_and_not_ready_is_evidence() {
    let (h, mut a) = Harness::three_nodes_with_a().await;
    let mut g = v1::graph_service_client::GraphServiceClient::new(h.agg.channel().await);
    let evidence = "Unknown since 2026-01-02T03:04:05Z (NodeStatusUnknown)";

    // A partition: b's Ready goes Unknown, nobody drained it. Its edges stay alarms (the
    // assignment does not change) and carry the Ready condition as evidence.
    h.api
        .apply_node(fixtures::node("b", &["192.168.0.2"]).unreachable());
    soon("b's Ready condition reaches the graph", || async {
        h.agg.graph.not_ready("b").is_some()
    })
    .await;
    let edges = h.edges_from("a").await;
    assert_eq!(edges.len(), 4);
    // Targets whose agents never connected (all but a here) are still named, from the model.
    let mut named: Vec<String> = edges
        .iter()
        .map(|e| format!("{}/{}", e.target_node, e.target_address))
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            "b/10.244.1.10",
            "b/192.168.0.2",
            "c/10.244.2.10",
            "c/192.168.0.3"
        ]
    );
    for e in &edges {
        assert!(!e.expected_down, "a partition is not expected: {e:?}");
        let want = if e.target_node == "b" { evidence } else { "" };
        assert_eq!(e.target_node_ready, want, "{e:?}");
        let json = echomesh_proto::view::edge_json(e);
        assert_eq!(json["target_node_ready"], want);
    }

    // The operator drains it for a reboot: cordoned (and still Unknown). Now expected.
    h.api.apply_node(
        fixtures::node("b", &["192.168.0.2"])
            .cordoned()
            .unreachable(),
    );
    let want_b_down = [B_DOWN, C].concat();
    wait_targets(&mut a, &want_b_down).await;
    let edges = h.edges_from("a").await;
    for e in &edges {
        assert_eq!(e.expected_down, e.target_node == "b", "{e:?}");
    }
    // Every probe is lost: the state changes say which ones are expected (b) and which are alarms (c).
    let mut watch = g
        .watch_events(v1::WatchEventsRequest {
            snapshot: false,
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let r = a.make_report(10, 10, 0);
    a.send_report(r).await;
    a.wait_ack(1).await;
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 4 {
        let ev = tokio::time::timeout(SOON, watch.message())
            .await
            .expect("event in time")
            .expect("stream ok")
            .expect("open");
        if ev.kind == v1::event::Kind::EdgeState as i32 {
            assert_eq!(ev.to, v1::EdgeState::Down as i32, "{ev:?}");
            seen.insert(
                ev.target_address.clone(),
                (ev.target_node.clone(), ev.expected_down),
            );
        }
    }
    for (addr, (node, expected)) in &seen {
        assert_eq!(*expected, node == "b", "{addr}");
    }
    // The autoscaler's and Karpenter's taints are planned too; then the node recovers fully.
    for taint in [
        "DeletionCandidateOfClusterAutoscaler",
        "karpenter.sh/disrupted",
    ] {
        h.api.apply_node(fixtures::node("b", &["192.168.0.2"]));
        wait_targets(&mut a, &A_SEES).await;
        h.api
            .apply_node(fixtures::node("b", &["192.168.0.2"]).tainted(taint));
        wait_targets(&mut a, &want_b_down).await;
    }
    h.api.apply_node(fixtures::node("b", &["192.168.0.2"]));
    wait_targets(&mut a, &A_SEES).await;
    soon("b's evidence cleared", || async {
        h.agg.graph.not_ready("b").is_none()
    })
    .await;
    h.api
        .apply_node(fixtures::node("c", &["192.168.0.3"]).deleting());
    wait_targets(&mut a, &[B, C_DOWN].concat()).await;
    h.stop().await;
}

#[tokio::test]
async fn watch_expired_then_relist_sees_missed_changes() {
    let (h, mut a) = Harness::three_nodes_with_a().await;
    soon("node watch open", || async {
        h.api.open_watches(Res::Nodes) > 0
    })
    .await;
    let lists_before = h.api.lists(Res::Nodes);
    // c disappears while the watch is "down": no DELETED event ever arrives, then 410 Gone.
    h.api.silently_delete_node("c");
    h.api.expire_watches(Res::Nodes);
    wait_targets(&mut a, &B).await;
    assert!(h.api.lists(Res::Nodes) > lists_before, "a re-list happened");
    h.stop().await;
}

#[tokio::test]
async fn forbidden_list_is_retried_readyz_names_the_permission_and_agents_keep_working() {
    let (api, client) = three_node_api();
    api.set_fault(Res::Nodes, Some(Fault::Status(403)));
    let h = Harness::start(api, client).await;
    // Until discovery works, connected agents get the full mesh of connected agents.
    let mut a = h.agent("a", Network::Pod, "10.244.0.10").await;
    let _b = h.agent("b", Network::Pod, "10.244.1.10").await;
    wait_targets(&mut a, &["b/pod/10.244.1.10"]).await;
    soon("the list is retried", || async {
        h.api.lists(Res::Nodes) >= 2
    })
    .await;
    let r = h.readyz().await;
    let body = &r.body;
    assert_eq!(r.status, 503, "{body}");
    assert!(
        body.contains(
            "kubernetes: forbidden: the aggregator's service account may not list nodes (cluster scope) \
             (RBAC needs get, list, watch on nodes)"
        ),
        "{body}"
    );
    assert!(body.contains("serving connected agents only"), "{body}");
    // RBAC fixed: the next retry lists, pinglists come from the model, readiness returns.
    h.api.set_fault(Res::Nodes, None);
    wait_targets(&mut a, &A_SEES).await;
    soon("readyz is 200 again", || async {
        h.readyz().await.status == 200
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn api_server_unreachable_at_start_keeps_serving_and_readyz_says_why() {
    let (api, client) = three_node_api();
    api.set_fault(Res::Nodes, Some(Fault::Unreachable));
    api.set_fault(Res::Pods, Some(Fault::Unreachable));
    let h = Harness::start(api, client).await;
    let mut a = h.agent("a", Network::Pod, "10.244.0.10").await;
    let mut b = h.agent("b", Network::Host, "192.168.0.2").await;
    wait_targets(&mut a, &["b/host/192.168.0.2"]).await;
    wait_targets(&mut b, &["a/pod/10.244.0.10"]).await;
    soon("readyz says the API server is unreachable", || async {
        let r = h.readyz().await;
        r.status == 503 && r.body.contains("API server unreachable (list nodes")
    })
    .await;
    // Reports still merge into the graph meanwhile.
    let r = a.make_report(10, 0, 100);
    a.send_report(r).await;
    a.wait_ack(1).await;
    h.api.set_fault(Res::Nodes, None);
    h.api.set_fault(Res::Pods, None);
    wait_targets(&mut a, &A_SEES).await;
    h.stop().await;
}

#[tokio::test]
async fn watch_failing_after_sync_keeps_the_last_model() {
    let (h, _a) = Harness::three_nodes_with_a().await;
    soon("pod watch open", || async {
        h.api.open_watches(Res::Pods) > 0
    })
    .await;
    h.api.set_fault(Res::Pods, Some(Fault::Status(500)));
    soon("readyz reports the failure", || async {
        let body = h.readyz().await.body;
        body.contains("HTTP 500") && body.contains("serving the last known cluster model")
    })
    .await;
    // A newly connected agent is still assigned from the last model.
    let mut b = h.agent("b", Network::Pod, "10.244.1.10").await;
    wait_targets(&mut b, &[A, C].concat()).await;
    h.stop().await;
}

#[tokio::test]
async fn a_reconnecting_agent_gets_its_unchanged_pinglist_again() {
    let h = Harness::three_nodes().await;
    let mut a = h.agent("a", Network::Pod, "10.244.0.10").await;
    let first = wait_targets(&mut a, &A_SEES).await;
    drop(a);
    // Same node, network and pinglist: the new session still needs an assignment to probe at all.
    let mut again = h.agent("a", Network::Pod, "10.244.0.10").await;
    let second = wait_targets(&mut again, &A_SEES).await;
    assert!(second.generation > first.generation);
    h.stop().await;
}

/// Every message each agent has received until none arrived for `quiet`: the assignments only.
async fn drain_assignments(agents: &mut [SimAgent], quiet: Duration) -> Vec<Vec<v1::Assignment>> {
    let mut got: Vec<Vec<v1::Assignment>> = vec![Vec::new(); agents.len()];
    let deadline = tokio::time::Instant::now() + SOON * 3;
    let mut last_news = tokio::time::Instant::now();
    while last_news.elapsed() < quiet {
        assert!(
            tokio::time::Instant::now() < deadline,
            "assignments kept coming"
        );
        let mut news = false;
        for (i, a) in agents.iter_mut().enumerate() {
            while let Some(m) = a.next_within(Duration::from_millis(1)).await {
                if let Some(aggregator_message::Msg::Assignment(x)) =
                    m.expect("stream ok").expect("stream open").msg
                {
                    a.assignment = Some(x.clone());
                    got[i].push(x);
                    news = true;
                }
            }
        }
        if news {
            last_news = tokio::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got
}

/// What an assignment tells the agent about its targets (the assigner's fingerprint's inputs).
fn list_of(a: &v1::Assignment) -> Vec<(u64, String, bool)> {
    a.targets
        .iter()
        .map(|t| (t.id, t.address.clone(), t.expected_down))
        .collect()
}

#[tokio::test]
async fn a_model_change_is_sent_only_to_the_agents_whose_budgeted_lists_changed() {
    use prost::Message as _;
    // 120 nodes, 240 agents, a budget of 40 targets: lists rotate over 12 arcs. A coverage
    // period of 1,000 hours makes each epoch 83 hours, so no rotation falls inside the test.
    const NODES: u32 = 120;
    let (nodes, pods) = fixtures::cluster(NODES);
    let (api, client) = MockApi::start(nodes, pods);
    let h = Harness::start_with(api, client, |c| {
        c.probe_budget_pps = 400;
        c.fast_probers = 4;
        c.coverage_period = Duration::from_secs(1000 * 3600);
    })
    .await;
    let mut agents = Vec::new();
    let mut keys = Vec::new();
    for i in 0..NODES {
        let node = fixtures::cluster_node_name(i);
        let (host, pod) = fixtures::cluster_addresses(i);
        for (net, addr) in [(Network::Pod, pod), (Network::Host, host)] {
            agents.push(h.agent(&node, net, &addr.to_string()).await);
            keys.push((i, net));
        }
    }
    let settled = drain_assignments(&mut agents, Duration::from_secs(2)).await;
    assert!(
        settled.iter().all(|a| !a.is_empty()),
        "every agent got a list"
    );
    let before: Vec<Vec<(u64, String, bool)>> = agents
        .iter()
        .map(|a| list_of(a.assignment.as_ref().expect("assigned")))
        .collect();
    assert!(before.iter().all(|l| l.len() <= 40), "within the budget");

    // One node joins, one leaves (with its agents), one agent pod's IP changes.
    let joined = fixtures::cluster_node_name(NODES);
    let (host, pod) = fixtures::cluster_addresses(NODES);
    h.api
        .apply_node(fixtures::node(&joined, &[&host.to_string()]));
    h.api
        .apply_pod(fixtures::agent_pod(&joined, false, &[&pod.to_string()]));
    h.api
        .apply_pod(fixtures::agent_pod(&joined, true, &[&host.to_string()]));
    let left = fixtures::cluster_node_name(7);
    h.api.delete_node(&left);
    h.api.delete_pod(&format!("echomesh-agent-pod-{left}"));
    h.api.delete_pod(&format!("echomesh-agent-host-{left}"));
    let gone: Vec<usize> = (0..keys.len()).filter(|&i| keys[i].0 == 7).collect();
    for &i in gone.iter().rev() {
        agents.remove(i);
        keys.remove(i);
    }
    let before: Vec<_> = (0..before.len())
        .filter(|i| !gone.contains(i))
        .map(|i| before[i].clone())
        .collect();
    let moved = fixtures::cluster_node_name(3);
    h.api
        .apply_pod(fixtures::agent_pod(&moved, false, &["10.200.0.3"]));

    let sent = drain_assignments(&mut agents, Duration::from_secs(2)).await;
    let mut changed = 0usize;
    let mut bytes = 0usize;
    let mut changed_list_bytes = 0usize;
    for (i, got) in sent.iter().enumerate() {
        let Some(last) = got.last() else {
            continue;
        };
        changed += 1;
        // Only changed lists are sent, once each.
        assert_ne!(
            list_of(last),
            before[i],
            "{:?}: unchanged list sent again",
            keys[i]
        );
        assert_eq!(
            got.len(),
            1,
            "{:?}: {} assignments for one change",
            keys[i],
            got.len()
        );
        bytes += got.iter().map(prost::Message::encoded_len).sum::<usize>();
        changed_list_bytes += last.encoded_len();
        assert!(last.targets.len() <= 40, "within the budget");
    }
    // The moved pod's new address reached someone, the joined node too, the gone one left.
    let all: Vec<&v1::Target> = agents
        .iter()
        .flat_map(|a| a.assignment.as_ref().expect("assigned").targets.iter())
        .collect();
    assert!(all.iter().any(|t| t.address == "10.200.0.3"));
    assert!(all.iter().any(|t| t.node == joined));
    assert!(all.iter().all(|t| t.node != left));
    // With 12 arcs a join or a leave changes about 2/12 of the lists each, plus a few fast sets
    // and the lists holding the moved address: about a third. Everything was a positional
    // window's answer.
    assert!(
        changed > 0 && changed * 10 < agents.len() * 6,
        "{changed} of {} agents got a new list",
        agents.len()
    );
    assert!(
        bytes <= 2 * changed_list_bytes,
        "{bytes} bytes for {changed_list_bytes}"
    );
    drop(agents);
    h.stop().await;
}
