//! The budget pinglist at a given size: what each agent gets and what the plan guarantees.
//!
//! `cargo run --release -p echomesh-aggregator --example pinglist_plan [NODES] [ZONES] [dual]`
//! (defaults 5000 nodes, 10 zones, single stack) prints the full list and the budgeted list of one
//! agent, the epoch and cycle, the fewest fast probers, how long the plan and one agent's list
//! take, and checks over one cycle that the agent's lists cover its whole full list.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echomesh_aggregator::graph::AgentKey;
use echomesh_aggregator::policy::{Budget, BudgetConfig, FullMesh, Peer, PinglistSource as _};
use echomesh_proto::v1::Network;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nodes: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let zones: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10)
        .max(1);
    let dual = args.get(2).is_some_and(|a| a == "dual");
    let mut peers = Vec::new();
    let mut zone_map: BTreeMap<Arc<str>, Arc<str>> = BTreeMap::new();
    for i in 0..nodes {
        let node: Arc<str> = format!("node{i:05}").into();
        zone_map.insert(node.clone(), format!("zone-{}", i % zones).into());
        for (network, base) in [(Network::Pod, 10u8), (Network::Host, 172u8)] {
            let mut addresses = vec![IpAddr::V4(Ipv4Addr::new(
                base,
                (i >> 16) as u8,
                (i >> 8) as u8,
                i as u8,
            ))];
            if dual {
                addresses.push(IpAddr::V6(Ipv6Addr::new(
                    0xfd00,
                    base.into(),
                    0,
                    0,
                    0,
                    0,
                    (i >> 16) as u16,
                    i as u16,
                )));
            }
            peers.push(Peer {
                key: AgentKey {
                    node: node.clone(),
                    network,
                },
                addresses,
            });
        }
    }
    let cfg = BudgetConfig::default();
    let budget = Budget::new(
        cfg.clone(),
        Arc::new(FullMesh),
        Arc::new(move || zone_map.clone()),
    );
    let agent = peers[0].key.clone();
    let full = FullMesh.targets(&agent, &peers).len();
    let t0 = Instant::now();
    let first = budget.targets_at(&agent, &peers, Duration::ZERO);
    let plan_time = t0.elapsed();
    // As the assigner does: one prepare per round, then every agent's list.
    budget.prepare(&peers);
    let t1 = Instant::now();
    let _ = budget.targets_at(&peers[1].key, &peers, Duration::ZERO);
    let list_time = t1.elapsed();
    let cov = budget.coverage();
    println!(
        "{nodes} nodes, {zones} zones, {}: full list {full} targets, budgeted {} (budget {} pps at {:?} = {} targets)",
        if dual { "dual stack" } else { "single stack" },
        first.len(),
        cfg.budget_pps,
        cfg.probe_interval,
        cfg.slots()
    );
    println!(
        "epoch {:?}, every pair within {:?} (asked: {:?})",
        cov.epoch, cov.cycle, cfg.coverage_period
    );
    for (net, (min, agents)) in &cov.fast_probers_min {
        println!(
            "{net:?}: {agents} agents, fewest fast probers {min} (wanted {})",
            cfg.fast_probers
        );
    }
    println!("plan {plan_time:?}, one agent's list {list_time:?}");
    // One whole assignment round as the assigner makes it: prepare, then every agent's list.
    let t2 = Instant::now();
    budget.prepare(&peers);
    let mut lists: Vec<Vec<u64>> = Vec::with_capacity(peers.len());
    for p in &peers {
        lists.push(
            budget
                .targets_at(&p.key, &peers, Duration::ZERO)
                .iter()
                .map(|t| t.id)
                .collect(),
        );
    }
    println!(
        "one round (prepare + {} agents' lists): {:?}",
        peers.len(),
        t2.elapsed()
    );
    // What a round cost before it read one shared list: every agent's full list built.
    let t3 = Instant::now();
    let mut n = 0;
    for p in &peers {
        n += FullMesh.targets(&p.key, &peers).len();
    }
    println!(
        "every agent's full list ({n} targets, what a round no longer builds): {:?}",
        t3.elapsed()
    );
    // One cycle of this agent's lists covers its full list.
    let epochs = (cov.cycle.as_millis() / cov.epoch.as_millis().max(1)).max(1) as u32;
    let mut seen = BTreeSet::new();
    for e in 0..epochs {
        for t in budget.targets_at(&agent, &peers, cov.epoch * e) {
            seen.insert(t.id);
        }
    }
    println!(
        "agent {agent}: {} of {full} targets probed over {epochs} epochs",
        seen.len()
    );
}
