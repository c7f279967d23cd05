//! Ready-made clusters for the tests that look at pictures and tables of the whole graph.
//!
//! The web page, its JSON API and the browser test all need the same small cluster with one
//! broken node; building it once keeps their expectations about that cluster in step.

use std::time::Duration;

use echomesh_proto::{Histogram, v1};

use crate::{SimAgent, TestAggregator};

/// An aggregator whose edges do not go stale while a test looks at them (a slow browser start on
/// a busy machine must not turn the picture grey): agents are told to report every 10 minutes.
pub async fn stable_server() -> TestAggregator {
    TestAggregator::start(|c| c.report_interval = Duration::from_secs(600)).await
}

/// Pod-network agents on `nodes`, at 127.0.0.1, 127.0.0.2, … in that order, each once assigned
/// every other.
pub async fn connected_agents(s: &TestAggregator, nodes: &[&str]) -> Vec<SimAgent> {
    connected_agents_at(s, nodes, |i| format!("127.0.0.{}", i + 1)).await
}

/// [`connected_agents`] with node `i`'s agent at `addr(i)`.
pub async fn connected_agents_at(
    s: &TestAggregator,
    nodes: &[&str],
    addr: impl Fn(usize) -> String,
) -> Vec<SimAgent> {
    let mut agents = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        agents.push(SimAgent::connect(s.channel().await, n, &addr(i)).await);
    }
    for a in &mut agents {
        a.wait_assignment(nodes.len() - 1).await;
    }
    agents
}

/// One acked report from each agent (agent `i` runs on `nodes[i]`) in which every probe from or
/// to node `cut` is lost and every other probe is answered after `rtt_us(i)` µs.
pub async fn report_with_node_cut(
    agents: &mut [SimAgent],
    nodes: &[&str],
    cut: &str,
    rtt_us: impl Fn(usize) -> u64,
) {
    let empty = v1::Histogram::from(&Histogram::new());
    for (i, a) in agents.iter_mut().enumerate() {
        let to_node = a.target_nodes();
        let mut r = a.make_report(100, 0, rtt_us(i));
        for t in &mut r.targets {
            if nodes[i] == cut || to_node.get(&t.target_id).is_some_and(|n| n == cut) {
                t.received = 0;
                t.lost = 100;
                t.rtt = Some(empty.clone());
            }
        }
        a.send_report_acked(r).await;
    }
}

/// An aggregator with agents on nodes a, b, c and d (pod network), where d is cut off: every
/// probe to and from d is lost for three report windows, so d's row and column are DOWN.
pub async fn cluster_with_broken_node() -> (TestAggregator, Vec<SimAgent>) {
    cluster_with_broken_node_on(v1::Network::Pod).await
}

/// [`cluster_with_broken_node`] with its agents on `network` only (`Host`: a cluster whose
/// agents all run on the host network, with no pod-network agent at all).
pub async fn cluster_with_broken_node_on(network: v1::Network) -> (TestAggregator, Vec<SimAgent>) {
    let s = stable_server().await;
    let agents = broken_node_agents(&s, &[network]).await;
    (s, agents)
}

/// [`cluster_with_broken_node`] on both networks: a, b, c and d each run a pod-network and a
/// host-network agent (every agent probes every other address, on both networks), and d is cut
/// off on both.
pub async fn cluster_with_broken_node_on_both_networks() -> (TestAggregator, Vec<SimAgent>) {
    let s = stable_server().await;
    let agents = broken_node_agents(&s, &[v1::Network::Pod, v1::Network::Host]).await;
    (s, agents)
}

async fn broken_node_agents(s: &TestAggregator, networks: &[v1::Network]) -> Vec<SimAgent> {
    let names = ["a", "b", "c", "d"];
    let mut agents = Vec::new();
    let mut owner = Vec::new();
    for &network in networks {
        let subnet = if network == v1::Network::Host { 1 } else { 0 };
        for (i, n) in names.iter().enumerate() {
            let addr = format!("127.0.{subnet}.{}", i + 1);
            let hello = crate::sim::hello_message(n, network, &addr);
            agents.push(
                SimAgent::open(s.channel().await, hello)
                    .await
                    .expect("session"),
            );
            owner.push(*n);
        }
    }
    for a in &mut agents {
        a.wait_assignment(names.len() * networks.len() - 1).await;
    }
    for _round in 1..=3 {
        report_with_node_cut(&mut agents, &owner, "d", |i| 150 + 50 * i as u64).await;
    }
    agents
}
