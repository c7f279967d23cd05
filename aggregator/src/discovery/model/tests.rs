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
    assert!(cp.ready.is_ready() && !cp.draining && !cp.deleting);
    assert_eq!(cp.ready.since.as_deref(), Some("2026-11-25T09:00:30Z"));
    // A control-plane NoSchedule taint is not a drain.
    assert!(!cp.expected_down());
    let w2 = &m.nodes["kind-worker2"];
    assert!(!w2.ready.is_ready(), "Ready=Unknown is not ready");
    assert!(w2.draining, "cordoned");
    // Expected down because it is cordoned, not because it is NotReady.
    assert_eq!(m.expected_down_nodes().len(), 1);
    assert_eq!(
        m.not_ready_nodes()
            .get("kind-worker2")
            .map(|s| s.to_string())
            .as_deref(),
        Some("Unknown (NodeStatusUnknown)")
    );

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
        ]
    );
    // kind-worker2 runs no host agent: its InternalIP is not a target.
    // kind-worker2 is cordoned: its targets are expected down, the others are not.
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
    pods.push(fixtures::agent_pod(
        "v6-worker",
        true,
        &["fc00:f853:ccd:e793::9"],
    ));
    let (m, warnings) = ClusterModel::build(&nodes, &pods);
    assert!(
        warnings
            .iter()
            .all(|w| !matches!(w, ModelWarning::NoHostAddress { .. }))
    );
    assert_eq!(
        m.host_addresses(&"v6-worker".into()),
        [ip("fc00:f853:ccd:e793::9")]
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
    // A host agent that has not started yet: no address from anywhere, said once.
    pods.push(fixtures::pending_agent_pod("bare-worker", true));
    let (m, w) = ClusterModel::build(&nodes, &pods);
    assert!(m.host_addresses(&"bare-worker".into()).is_empty());
    assert!(
        w.iter().any(|w| w.to_string()
            == "node bare-worker: runs a host agent but has no usable InternalIP address \
                (and its agent pod reports none)"),
        "{w:?}"
    );
    // With a host agent running, the host agent's pod IPs stand in for the missing InternalIP.
    pods.pop();
    pods.push(fixtures::agent_pod("bare-worker", true, &["192.168.0.77"]));
    let (m, _) = ClusterModel::build(&nodes, &pods);
    assert_eq!(
        m.host_addresses(&"bare-worker".into()),
        [ip("192.168.0.77")]
    );
    let t = m.targets(&key("a", Network::Pod), &[]);
    assert!(addrs(&t).contains(&"bare-worker/Host/192.168.0.77".to_string()));
}

#[test]
fn only_planned_outages_mark_targets_expected_down() {
    let b = || fixtures::node("b", &["192.168.0.2"]);
    let mut planned = vec![("cordoned", b().cordoned()), ("deleting", b().deleting())];
    for taint in DRAIN_TAINTS {
        planned.push((taint, b().tainted(taint)));
    }
    assert_eq!(planned.len(), 7, "cordon, deletion and five taints");
    for (what, n) in planned {
        let (mut nodes, pods) = fixtures::three_nodes();
        nodes[1] = n;
        let (m, _) = ClusterModel::build(&nodes, &pods);
        let t = m.targets(&key("a", Network::Pod), &[]);
        assert_eq!(t.len(), 4, "{what}");
        for t in &t {
            assert_eq!(t.expected_down, &*t.node == "b", "{what}: {t:?}");
        }
    }
    // Unplanned: NotReady (the kubelet says so) or Ready=Unknown (the kubelet is silent, as in a
    // partition) keeps alarming; the condition is carried as evidence.
    for (n, evidence) in [
        (
            b().not_ready(),
            "False since 2026-01-02T03:04:05Z (KubeletNotReady)",
        ),
        (
            b().unreachable(),
            "Unknown since 2026-01-02T03:04:05Z (NodeStatusUnknown)",
        ),
    ] {
        let (mut nodes, pods) = fixtures::three_nodes();
        nodes[1] = n;
        let (m, _) = ClusterModel::build(&nodes, &pods);
        let t = m.targets(&key("a", Network::Pod), &[]);
        assert_eq!(t.len(), 4, "{evidence}");
        assert!(t.iter().all(|t| !t.expected_down), "{evidence}: {t:?}");
        assert!(m.expected_down_nodes().is_empty());
        let not_ready = m.not_ready_nodes();
        assert_eq!(not_ready.len(), 1);
        assert_eq!(not_ready.get("b").map(|s| &**s), Some(evidence));
    }
    // A taint that only restricts scheduling is not a drain.
    let (mut nodes, pods) = fixtures::three_nodes();
    nodes[1] = b().tainted("node-role.kubernetes.io/control-plane");
    let (m, _) = ClusterModel::build(&nodes, &pods);
    assert!(m.expected_down_nodes().is_empty());
}

#[test]
fn drain_then_notready_is_expected_but_notready_alone_alarms() {
    // A planned reboot: cordoned first, then the kubelet goes away.
    let (mut nodes, pods) = fixtures::three_nodes();
    nodes[1] = fixtures::node("b", &["192.168.0.2"]).cordoned();
    let (m, _) = ClusterModel::build(&nodes, &pods);
    assert!(
        m.targets(&key("a", Network::Pod), &[])
            .iter()
            .any(|t| t.expected_down)
    );
    nodes[1] = fixtures::node("b", &["192.168.0.2"])
        .cordoned()
        .unreachable();
    let (m, _) = ClusterModel::build(&nodes, &pods);
    let t = m.targets(&key("a", Network::Pod), &[]);
    for t in &t {
        assert_eq!(t.expected_down, &*t.node == "b", "{t:?}");
    }
    assert!(m.not_ready_nodes().contains_key("b"), "evidence kept");
    // A partition: nobody cordoned it.
    nodes[1] = fixtures::node("b", &["192.168.0.2"]).unreachable();
    let (m, _) = ClusterModel::build(&nodes, &pods);
    assert!(
        m.targets(&key("a", Network::Pod), &[])
            .iter()
            .all(|t| !t.expected_down)
    );
    assert_eq!(
        m.not_ready_nodes().get("b").map(|s| &**s),
        Some("Unknown since 2026-01-02T03:04:05Z (NodeStatusUnknown)")
    );
}

fn agentless() -> Vec<Node> {
    let nodes: List<Node> = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/nodes-agentless.json"
    )))
    .expect("nodes-agentless.json");
    nodes.items
}

#[test]
fn nodes_without_an_agent_are_not_targets() {
    // Fargate and Windows nodes: Ready, with InternalIPs, but no agent pod can run there.
    let (mut nodes, pods) = fixtures::three_nodes();
    nodes.extend(agentless());
    let (m, w) = ClusterModel::build(&nodes, &pods);
    assert_eq!(m.nodes.len(), 6);
    assert!(w.is_empty(), "{w:?}");
    let t = m.targets(&key("a", Network::Host), &[]);
    assert_eq!(
        addrs(&t),
        [
            "b/Pod/10.244.1.10",
            "b/Host/192.168.0.2",
            "c/Pod/10.244.2.10",
            "c/Host/192.168.0.3",
        ]
    );
    assert_eq!(m.endpoints().len(), 6, "three nodes, pod + host each");
    // A node with only a pod agent is a pod target and not a host target, and the reverse.
    let (nodes, mut pods) = fixtures::three_nodes();
    pods.retain(|p| p.metadata.name.as_deref() != Some("echomesh-agent-host-b"));
    pods.retain(|p| p.metadata.name.as_deref() != Some("echomesh-agent-pod-c"));
    let (m, _) = ClusterModel::build(&nodes, &pods);
    assert_eq!(
        addrs(&m.targets(&key("a", Network::Pod), &[])),
        ["b/Pod/10.244.1.10", "c/Host/192.168.0.3"]
    );
}

#[test]
fn a_starting_host_agent_makes_its_node_a_host_target_but_a_starting_pod_agent_does_not() {
    let (mut nodes, mut pods) = fixtures::three_nodes();
    nodes.push(fixtures::node("d", &["192.168.0.4"]));
    pods.push(fixtures::pending_agent_pod("d", true));
    pods.push(fixtures::pending_agent_pod("d", false));
    let (m, w) = ClusterModel::build(&nodes, &pods);
    assert!(w.is_empty(), "{w:?}");
    let d: Vec<String> = addrs(&m.targets(&key("a", Network::Pod), &[]))
        .into_iter()
        .filter(|t| t.starts_with("d/"))
        .collect();
    // The host address comes from the Node; the pod agent has no IP to probe yet.
    assert_eq!(d, ["d/Host/192.168.0.4"]);
}

#[test]
fn multi_nic_node_is_probed_on_one_address_per_family_of_the_chosen_type() {
    let (mut nodes, mut pods) = fixtures::three_nodes();
    let multi = agentless()
        .into_iter()
        .find(|n| n.metadata.name.as_deref() == Some("multi-nic"))
        .expect("multi-nic node");
    nodes.push(multi);
    pods.push(fixtures::agent_pod("multi-nic", true, &["10.0.1.20"]));
    let (m, w) = ClusterModel::build(&nodes, &pods);
    assert!(w.is_empty(), "{w:?}");
    let node = &m.nodes["multi-nic"];
    assert_eq!(node.internal_ips.len(), 4);
    assert_eq!(
        m.host_addresses(&"multi-nic".into()),
        [ip("10.0.1.20"), ip("fd00:1::20")],
        "the first InternalIP of each family"
    );
    let host_targets = |m: &ClusterModel| {
        addrs(&m.targets(&key("a", Network::Pod), &[]))
            .into_iter()
            .filter(|t| t.starts_with("multi-nic/"))
            .collect::<Vec<_>>()
    };
    // Node a is IPv4-only: one target.
    assert_eq!(host_targets(&m), ["multi-nic/Host/10.0.1.20"]);
    // The host agent announcing the second NIC is not a stale agent.
    assert_eq!(
        m.hello_mismatch(&key("multi-nic", Network::Host), &[ip("10.0.2.20")]),
        None
    );
    let (m, _) = ClusterModel::build_with(HostAddressType::ExternalIp, &nodes, &pods);
    assert_eq!(
        m.host_addresses(&"multi-nic".into()),
        [ip("203.0.113.20"), ip("2001:db8::20")]
    );
    assert_eq!(host_targets(&m), ["multi-nic/Host/203.0.113.20"]);
    // Nodes without ExternalIPs fall back to their host agent's pod IP.
    assert_eq!(m.host_addresses(&"b".into()), [ip("192.168.0.2")]);
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

#[test]
fn a_terminating_pod_agent_is_expected_down_but_its_host_address_is_not() {
    let (nodes, mut pods) = fixtures::three_nodes();
    let deleting = fixtures::node("z", &[])
        .deleting()
        .metadata
        .deletion_timestamp;
    for p in &mut pods {
        if p.metadata.name.as_deref() == Some("echomesh-agent-pod-b") {
            p.metadata.deletion_timestamp = deleting.clone();
        }
    }
    let (m, _) = ClusterModel::build(&nodes, &pods);
    let t = m.targets(&key("a", Network::Pod), &[]);
    for t in &t {
        let expected = &*t.node == "b" && t.network == Network::Pod;
        assert_eq!(t.expected_down, expected, "{t:?}");
    }
    // The node itself is not expected down: its host address and its other edges still alarm.
    assert!(m.expected_down_nodes().is_empty());
}

#[test]
fn zones_come_from_the_zone_label_the_deprecated_one_or_none() {
    let labelled = |name: &str, key: &str, zone: &str| {
        let mut n = fixtures::node(name, &["192.168.0.9"]);
        n.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), zone.to_string());
        n
    };
    let nodes = vec![
        labelled("a", "topology.kubernetes.io/zone", "eu-1a"),
        labelled("b", "failure-domain.beta.kubernetes.io/zone", "eu-1b"),
        labelled("c", "topology.kubernetes.io/zone", ""),
        fixtures::node("d", &["192.168.0.4"]),
    ];
    let (m, _) = ClusterModel::build(&nodes, &[]);
    let zones = m.node_zones();
    assert_eq!(zones.len(), 2, "{zones:?}");
    assert_eq!(zones.get("a").map(|z| &**z), Some("eu-1a"));
    assert_eq!(zones.get("b").map(|z| &**z), Some("eu-1b"));
}
