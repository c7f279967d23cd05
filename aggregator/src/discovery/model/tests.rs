use std::net::IpAddr;

use k8s_openapi::List;

use super::*;
use echomesh_testkit::k8s::fixtures::{self, NodeExt as _};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

fn key(node: &str, network: Network) -> AgentKey {
    AgentKey {
        node: node.into(),
        network,
    }
}

fn addrs(t: &[PlannedTarget]) -> Vec<String> {
    t.iter()
        .map(|t| format!("{}/{:?}/{}", t.node, t.network, t.addr))
        .collect()
}

fn recorded() -> (Vec<Node>, Vec<Pod>) {
    let nodes: List<Node> = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/nodes.json"
    )))
    .expect("nodes.json");
    let pods: List<Pod> = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pods.json"
    )))
    .expect("pods.json");
    (nodes.items, pods.items)
}

#[test]
fn recorded_cluster_builds_the_expected_model() {
    let (nodes, pods) = recorded();
    let (m, warnings) = ClusterModel::build(&nodes, &pods);
    assert_eq!(m.nodes.len(), 3);
    let cp = &m.nodes["kind-control-plane"];
    assert_eq!(
        cp.internal_ips,
        [ip("172.18.0.2"), ip("fc00:f853:ccd:e793::2")]
    );
    assert_eq!(cp.pod_cidrs.len(), 2);
    assert!(cp.ready && !cp.draining && !cp.deleting);
    // A control-plane NoSchedule taint is not a drain.
    assert!(!cp.expected_down());
    let w2 = &m.nodes["kind-worker2"];
    assert!(!w2.ready, "Ready=Unknown is not ready");
    assert!(w2.draining, "cordoned");
    assert_eq!(m.expected_down_nodes().len(), 1);

    assert_eq!(m.agents.len(), 5);
    let host = &m.agents[&key("kind-worker", Network::Host)];
    assert_eq!(host.name, "echomesh-agent-host-q2p6n");
    assert_eq!(m.agents[&key("kind-worker", Network::Pod)].ips.len(), 2);
    // The pending pod has no node: skipped with a warning, not an error.
    assert!(warnings.contains(&ModelWarning::Unscheduled {
        pod: "echomesh-agent-pod-pending".into()
    }));
}

#[test]
fn every_agent_targets_every_other_nodes_pod_and_host_addresses() {
    let (nodes, pods) = recorded();
    let (m, _) = ClusterModel::build(&nodes, &pods);
    let t = m.targets(&key("kind-control-plane", Network::Pod), &[]);
    assert_eq!(
        addrs(&t),
        [
            "kind-worker/Pod/10.244.1.7",
            "kind-worker/Pod/fd00:10:244:1::7",
            "kind-worker/Host/172.18.0.3",
            "kind-worker/Host/fc00:f853:ccd:e793::3",
            "kind-worker2/Pod/10.244.2.9",
            "kind-worker2/Host/172.18.0.4",
        ]
    );
    // kind-worker2 is NotReady and cordoned: its targets are expected down, the others are not.
    for t in &t {
        assert_eq!(t.expected_down, &*t.node == "kind-worker2", "{t:?}");
        assert_eq!(t.id, endpoint_id(&t.node, t.network, t.addr));
    }
    // The host agent of a node targets the same set (both networks of the other nodes).
    let h = m.targets(&key("kind-control-plane", Network::Host), &[]);
    assert_eq!(addrs(&h), addrs(&t));
}

#[test]
fn ipv4_only_agent_does_not_get_ipv6_targets() {
    let (nodes, pods) = recorded();
    let (m, _) = ClusterModel::build(&nodes, &pods);
    // kind-worker2's pod agent has only an IPv4 pod IP.
    let t = m.targets(&key("kind-worker2", Network::Pod), &[]);
    assert!(t.iter().all(|t| t.addr.is_ipv4()), "{:?}", addrs(&t));
    assert_eq!(t.len(), 4);
}

#[test]
fn ipv6_only_node_is_handled() {
    let v6: Node = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/node-ipv6-only.json"
    )))
    .expect("node-ipv6-only.json");
    let (mut nodes, mut pods) = recorded();
    nodes.push(v6);
    pods.push(fixtures::agent_pod(
        "v6-worker",
        false,
        &["fd00:10:244:9::3"],
    ));
    let (m, warnings) = ClusterModel::build(&nodes, &pods);
    assert!(
        warnings
            .iter()
            .all(|w| !matches!(w, ModelWarning::NoInternalIp { .. }))
    );
    let n = &m.nodes["v6-worker"];
    assert_eq!(n.internal_ips, [ip("fc00:f853:ccd:e793::9")]);
    // A dual-stack agent probes the IPv6-only node over IPv6.
    let dual = m.targets(&key("kind-worker", Network::Pod), &[]);
    assert!(
        addrs(&dual).contains(&"v6-worker/Host/fc00:f853:ccd:e793::9".to_string()),
        "{:?}",
        addrs(&dual)
    );
    // An IPv4-only agent gets nothing for it; the IPv6-only agent gets only IPv6 targets.
    let v4 = m.targets(&key("kind-worker2", Network::Pod), &[]);
    assert!(v4.iter().all(|t| &*t.node != "v6-worker"));
    let from_v6 = m.targets(&key("v6-worker", Network::Pod), &[]);
    assert!(!from_v6.is_empty() && from_v6.iter().all(|t| t.addr.is_ipv6()));
}

#[test]
fn node_without_internal_ip_is_handled() {
    let bare: Node = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/node-no-internal-ip.json"
    )))
    .expect("node-no-internal-ip.json");
    let mut w = Vec::new();
    let info = node_info(&bare, &mut w).expect("named node is kept");
    assert!(info.internal_ips.is_empty() && info.pod_cidrs.is_empty());
    let msgs: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "node/bare-worker: status.addresses[InternalIP] \"garbage\" is not valid, ignored",
            "node bare-worker: no usable InternalIP address",
            "node/bare-worker: spec.podCIDRs \"not-a-cidr\" is not valid, ignored",
        ]
    );
    // Without a host agent it gets no host targets, but its pod agent is still a target.
    let (mut nodes, mut pods) = fixtures::three_nodes();
    nodes.push(bare);
    pods.push(fixtures::agent_pod("bare-worker", false, &["10.244.7.7"]));
    let (m, _) = ClusterModel::build(&nodes, &pods);
    let t = m.targets(&key("a", Network::Pod), &[]);
    let bare_targets: Vec<_> = t.iter().filter(|t| &*t.node == "bare-worker").collect();
    assert_eq!(bare_targets.len(), 1);
    assert_eq!(bare_targets[0].network, Network::Pod);
    // With a host agent running, the host agent's pod IPs stand in for the missing InternalIP.
    pods.push(fixtures::agent_pod("bare-worker", true, &["192.168.0.77"]));
    let (m, _) = ClusterModel::build(&nodes, &pods);
    assert_eq!(
        m.host_addresses(&"bare-worker".into()),
        [ip("192.168.0.77")]
    );
}

#[test]
fn drain_signals_mark_targets_expected_down() {
    for (what, n) in [
        (
            "not ready",
            fixtures::node("b", &["192.168.0.2"]).not_ready(),
        ),
        ("cordoned", fixtures::node("b", &["192.168.0.2"]).cordoned()),
        (
            "autoscaler taint",
            fixtures::node("b", &["192.168.0.2"]).tainted("ToBeDeletedByClusterAutoscaler"),
        ),
        ("deleting", fixtures::node("b", &["192.168.0.2"]).deleting()),
    ] {
        let (mut nodes, pods) = fixtures::three_nodes();
        nodes[1] = n;
        let (m, _) = ClusterModel::build(&nodes, &pods);
        let t = m.targets(&key("a", Network::Pod), &[]);
        assert_eq!(t.len(), 4, "{what}");
        for t in &t {
            assert_eq!(t.expected_down, &*t.node == "b", "{what}: {t:?}");
        }
    }
}

#[test]
fn objects_without_names_or_nodes_are_skipped_not_fatal() {
    let mut n = fixtures::node("x", &["192.168.9.9"]);
    n.metadata.name = None;
    n.status = None;
    let mut p = fixtures::agent_pod("x", false, &["10.0.0.1"]);
    p.spec = None;
    let mut garbage_ip = fixtures::agent_pod("y", false, &["10.0.0.300"]);
    garbage_ip.status.get_or_insert_default().pod_ip = Some("nope".into());
    let (m, w) = ClusterModel::build([&n], [&p, &garbage_ip]);
    assert!(m.nodes.is_empty());
    assert_eq!(m.agents.len(), 1);
    assert!(m.agents.values().all(|a| a.ips.is_empty()));
    assert!(w.contains(&ModelWarning::Unnamed { kind: "Node" }));
    assert!(w.iter().any(|w| w.to_string().contains("10.0.0.300")));
}

#[test]
fn rollout_duplicates_prefer_the_live_pod() {
    let (nodes, mut pods) = fixtures::three_nodes();
    let mut old = fixtures::agent_pod("a", false, &["10.244.0.99"]);
    old.metadata.name = Some("aaa-old".into());
    old.metadata.deletion_timestamp = fixtures::node("z", &[])
        .deleting()
        .metadata
        .deletion_timestamp;
    pods.push(old);
    let (m, w) = ClusterModel::build(&nodes, &pods);
    assert_eq!(m.agents[&key("a", Network::Pod)].ips, [ip("10.244.0.10")]);
    assert!(
        w.iter()
            .any(|w| matches!(w, ModelWarning::DuplicateAgent { .. }))
    );
}

#[test]
fn hello_is_matched_against_the_model() {
    let (nodes, pods) = fixtures::three_nodes();
    let (m, _) = ClusterModel::build(&nodes, &pods);
    assert_eq!(
        m.hello_mismatch(&key("a", Network::Pod), &[ip("10.244.0.10")]),
        None
    );
    assert_eq!(
        m.hello_mismatch(&key("a", Network::Host), &[ip("192.168.0.1")]),
        None
    );
    let stale = m
        .hello_mismatch(&key("a", Network::Pod), &[ip("10.244.0.11")])
        .expect("mismatch");
    assert_eq!(
        stale,
        "announced 10.244.0.11 but the API server lists [10.244.0.10]"
    );
    // Dual-stack pod, agent announcing only its IPv4 pod IP (what status.podIP gives): fine.
    let (nodes, pods) = recorded();
    let (m2, _) = ClusterModel::build(&nodes, &pods);
    assert_eq!(
        m2.hello_mismatch(&key("kind-worker", Network::Pod), &[ip("10.244.1.7")]),
        None
    );
    let unknown = m
        .hello_mismatch(&key("zz", Network::Pod), &[ip("10.0.0.1")])
        .expect("unknown node");
    assert_eq!(unknown, "node zz is not in the cluster model");
}

#[test]
fn evicted_agent_pod_does_not_shadow_its_replacement() {
    let (nodes, mut pods) = fixtures::three_nodes();
    let mut evicted = fixtures::agent_pod("a", false, &["10.244.0.3"]);
    evicted.metadata.name = Some("a-evicted".into());
    evicted.status.get_or_insert_default().phase = Some("Failed".into());
    pods.push(evicted);
    let (m, w) = ClusterModel::build(&nodes, &pods);
    assert_eq!(m.agents[&key("a", Network::Pod)].ips, [ip("10.244.0.10")]);
    assert!(w.contains(&ModelWarning::Finished {
        pod: "a-evicted".into(),
        phase: "Failed".into()
    }));
}

#[test]
fn a_five_thousand_node_cluster_builds_and_assigns() {
    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    for i in 0..5000u32 {
        let name = format!("n{i:04}");
        let host = format!("10.{}.{}.1", i / 256, i % 256);
        nodes.push(fixtures::node(&name, &[&host]));
        pods.push(fixtures::agent_pod(
            &name,
            false,
            &[&format!("100.{}.{}.10", i / 256, i % 256)],
        ));
        pods.push(fixtures::agent_pod(&name, true, &[&host]));
    }
    let (m, w) = ClusterModel::build(&nodes, &pods);
    assert!(w.is_empty(), "{:?}", w.first());
    assert_eq!((m.nodes.len(), m.agents.len()), (5000, 10_000));
    let t = m.targets(&key("n0042", Network::Host), &[]);
    assert_eq!(t.len(), 2 * 4999);
    assert!(t.iter().all(|t| &*t.node != "n0042"));
    assert_eq!(m.endpoints().len(), 10_000);
}
