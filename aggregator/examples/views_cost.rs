//! What each read view costs the aggregator at cluster size, server side, on a graph filled in
//! this process (no gRPC, no agents): the figures behind "`status`, `top` and `check` stay
//! instant at 5,000 nodes".
//!
//! `cargo run --release -p echomesh-aggregator --example views_cost [NODES] [TARGETS] [RUNS]`
//! builds NODES nodes (default 5,000) in zones of 500, each with a pod and a host agent probing
//! TARGETS peers of its network (default 200, the default budget's 2,000 probes/s at 10 Hz), all
//! reported once, then times every view RUNS times (default 5) and prints the median and the
//! worst in milliseconds. `bench/views.sh` runs it; bench/README.md records a run.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echomesh_aggregator::api::Query;
use echomesh_aggregator::graph::{AgentInfo, AgentKey, EventHub, Graph, GraphConfig, endpoint_id};
use echomesh_aggregator::ingest::{Ingest, IngestConfig};
use echomesh_aggregator::policy::FullMesh;
use echomesh_proto::Histogram;
use echomesh_proto::v1::{self, EdgeSort, EdgeState, Network, graph_service_server::GraphService};
use tonic::Request;

fn arg(i: usize, name: &str, default: usize) -> usize {
    match std::env::args().nth(i) {
        None => default,
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("views_cost: {name} must be a positive whole number, got {s:?}");
                std::process::exit(2);
            }
        },
    }
}

fn addr(net: Network, i: usize) -> IpAddr {
    let plane = if net == Network::Pod { 1 } else { 2 };
    IpAddr::V4(Ipv4Addr::new(10, plane, (i >> 8) as u8, i as u8))
}

fn name(i: usize) -> String {
    format!("node-{i:05}")
}

fn fill(nodes: usize, targets: usize) -> Arc<Graph> {
    let graph = Arc::new(Graph::new(GraphConfig::default(), EventHub::new(16, 1)));
    graph.set_node_zones(
        (0..nodes)
            .map(|i| (name(i).into(), format!("zone-{}", i / 500).into()))
            .collect(),
    );
    let mut h = Histogram::new();
    for us in [80, 90, 100, 110, 120, 130, 150, 200, 300, 2_000] {
        h.record(Duration::from_micros(us));
    }
    let wire = v1::Histogram::from(&h);
    for net in [Network::Pod, Network::Host] {
        for i in 0..nodes {
            let key = AgentKey {
                node: name(i).into(),
                network: net,
            };
            let info = AgentInfo {
                addresses: vec![addr(net, i)],
                connected: true,
                boot_id: 1,
                ..AgentInfo::default()
            };
            graph.upsert_agent(key, info);
        }
    }
    for net in [Network::Pod, Network::Host] {
        for i in 0..nodes {
            let key = AgentKey {
                node: name(i).into(),
                network: net,
            };
            let Some(a) = graph.agent(&key) else { continue };
            let ids: Vec<u64> = (1..=targets.min(nodes - 1))
                .map(|d| (i + d) % nodes)
                .map(|j| endpoint_id(&name(j), net, addr(net, j)))
                .collect();
            graph.apply_assignment(&a, 1, &ids, Duration::from_secs(1));
            let report = v1::Report {
                seq: 1,
                generation: 1,
                window_start_unix_ms: 0,
                window_ms: 1000,
                targets: ids
                    .iter()
                    .enumerate()
                    .map(|(slot, &id)| v1::TargetStats {
                        target_id: id,
                        slot: slot as u32,
                        sent: 10,
                        received: 10,
                        rtt: Some(wire.clone()),
                        ..v1::TargetStats::default()
                    })
                    .collect(),
            };
            let _ = graph.merge_report(&a, &report);
        }
    }
    graph
}

#[tokio::main]
async fn main() {
    let nodes = arg(1, "NODES", 5_000);
    let targets = arg(2, "TARGETS", 200);
    let runs = arg(3, "RUNS", 5);
    let t = Instant::now();
    let graph = fill(nodes, targets);
    let edges = 2 * nodes * targets.min(nodes - 1);
    println!(
        "{nodes} nodes, {} agents, {edges} edges, filled in {:.1} s",
        2 * nodes,
        t.elapsed().as_secs_f64()
    );
    let ingest = Ingest::new(graph.clone(), IngestConfig::default(), Arc::new(FullMesh));
    let q = Query::new(graph.clone(), ingest.clone());
    println!(
        "{:<44} {:>10} {:>10}  goal",
        "view (server side)", "median ms", "max ms"
    );
    macro_rules! time {
        ($label:expr, $goal:expr, $call:expr) => {{
            let mut ms = Vec::with_capacity(runs);
            for _ in 0..runs {
                let t = Instant::now();
                let r = $call.await;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                if let Err(e) = r {
                    println!("{}: {e}", $label);
                }
            }
            report($label, $goal, &mut ms);
        }};
    }
    time!(
        "Summary (status, check)",
        Some(INSTANT_MS),
        q.summary(Request::new(v1::SummaryRequest {}))
    );
    time!(
        "ListNodes (nodes, check)",
        Some(INSTANT_MS),
        q.list_nodes(Request::new(v1::ListNodesRequest {}))
    );
    time!(
        "ListEdges worst 10 by loss (top)",
        Some(INSTANT_MS),
        q.list_edges(Request::new(v1::ListEdgesRequest {
            sort: EdgeSort::Loss as i32,
            limit: 10,
            ..Default::default()
        }))
    );
    time!(
        "ListEdges DOWN/DEGRADED (check)",
        Some(INSTANT_MS),
        q.list_edges(Request::new(v1::ListEdgesRequest {
            states: vec![EdgeState::Down as i32, EdgeState::Degraded as i32],
            limit: 10_000,
            ..Default::default()
        }))
    );
    time!(
        "ListEdges one page of 10,000",
        None,
        q.list_edges(Request::new(v1::ListEdgesRequest {
            limit: 10_000,
            ..Default::default()
        }))
    );
    time!(
        "GetEdge",
        Some(10.0),
        q.get_edge(Request::new(v1::GetEdgeRequest {
            source_node: name(0),
            target: name(1),
            ..Default::default()
        }))
    );
    time!(
        "NodeSummary (nodes --summary)",
        None,
        q.node_summary(Request::new(v1::NodeSummaryRequest::default()))
    );
    time!(
        "ZoneMatrix (zones)",
        None,
        q.zone_matrix(Request::new(v1::ZoneMatrixRequest::default()))
    );
    time!(
        "Matrix of one zone (matrix --zone)",
        None,
        q.matrix(Request::new(v1::MatrixRequest {
            zone: Some("zone-1".into()),
            ..Default::default()
        }))
    );
    time!(
        "Diagnose, computed",
        None,
        Query::new(graph.clone(), ingest.clone())
            .diagnose(Request::new(v1::DiagnoseRequest::default()))
    );
    time!(
        "Diagnose, shared verdict (within 1 s)",
        None,
        q.diagnose(Request::new(v1::DiagnoseRequest::default()))
    );
}

/// "Instant": a wait a person does not notice, for the request that answers `status`, `top`
/// and `check`.
const INSTANT_MS: f64 = 100.0;

/// One line: the median and the worst of `ms`, and the median beside `goal` when there is one.
fn report(label: &str, goal: Option<f64>, ms: &mut [f64]) {
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    let verdict = goal.map_or(String::new(), |g| {
        let v = if median <= g { "PASS" } else { "FAIL" };
        format!("  median <= {g:.0} ms: {v}")
    });
    println!(
        "{label:<44} {median:>10.1} {:>10.1}{verdict}",
        ms[ms.len() - 1]
    );
}
