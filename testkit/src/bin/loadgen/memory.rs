//! The memory mode: the edge store alone, in this process.
//!
//! Memory per edge is a property of the graph store, not of gRPC, so it is measured on the store
//! directly (RSS growth over millions of edges) together with the merge cost per edge update.

use std::time::{Duration, Instant};

use echomesh_aggregator::graph::EventHub;
use echomesh_aggregator::graph::{
    AgentInfo, AgentKey, EdgeRecord, Graph, GraphConfig, endpoint_id,
};
use echomesh_proto::v1;
use echomesh_runtime::procfs::Proc;

use crate::Args;
use crate::server::rss_bytes;
use crate::workload::{node_addr, node_name, window_histogram};

/// The `memory` mode.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let (na, nt) = (args.mem_agents, args.mem_targets);
    let rss0 = rss_bytes(Proc::Current)?;
    let graph = Graph::new(GraphConfig::default(), EventHub::new(16, 1));
    let mut agents = Vec::with_capacity(na);
    for i in 0..na {
        let addr = node_addr(i).parse()?;
        let key = AgentKey {
            node: node_name(i).into(),
            network: v1::Network::Pod,
        };
        let a = graph.upsert_agent(
            key,
            AgentInfo {
                addresses: vec![addr],
                boot_id: 1,
                connected: true,
                ..AgentInfo::default()
            },
        );
        let ids: Vec<u64> = (0..nt)
            .map(|t| endpoint_id(&node_name(t), v1::Network::Pod, addr))
            .collect();
        graph.apply_assignment(&a, 1, &ids, Duration::from_secs(1));
        agents.push(a);
    }
    let rss1 = rss_bytes(Proc::Current)?;
    // One report per agent: every record touched, sketches filled.
    let wire = v1::Histogram::from(&window_histogram());
    let mut merge_ns = 0u128;
    for a in &agents {
        let report = v1::Report {
            seq: 1,
            generation: 1,
            window_start_unix_ms: 0,
            window_ms: 1000,
            targets: Graph::assigned_ids(a)
                .into_iter()
                .enumerate()
                .map(|(slot, id)| v1::TargetStats {
                    target_id: id,
                    slot: slot as u32,
                    sent: 10,
                    received: 10,
                    rtt: Some(wire.clone()),
                    ..v1::TargetStats::default()
                })
                .collect(),
        };
        let t = Instant::now();
        graph.merge_report(a, &report)?;
        merge_ns += t.elapsed().as_nanos();
    }
    let rss2 = rss_bytes(Proc::Current)?;
    let edges = (na * nt) as f64;
    println!(
        "memory: {na} agents x {nt} targets = {:.1}M edges; EdgeRecord = {} B",
        edges / 1e6,
        std::mem::size_of::<EdgeRecord>()
    );
    println!(
        "RSS growth: {:.0} B per edge after assignment, {:.0} B per edge after one report each ({:.0} MiB total)",
        (rss1 - rss0) as f64 / edges,
        (rss2.max(rss1) - rss0) as f64 / edges,
        (rss2.max(rss1) - rss0) as f64 / 1048576.0
    );
    println!(
        "merge (graph only, no gRPC): {:.1} ns per edge update",
        merge_ns as f64 / edges
    );
    Ok(())
}
