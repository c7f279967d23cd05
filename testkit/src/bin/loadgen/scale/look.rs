//! What the scripted events look at: the aggregator's read API, as an operator's tools would.
//!
//! Edge states come from `ListEdges` filtered by node (so only the event's edges travel), node
//! and zone verdicts from `Diagnose`, the cluster totals from `Summary` (what `echomesh status`
//! prints), and responsiveness from a `GetEdge` caller that runs through the storm.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use echomesh_proto::v1::{self, graph_service_client::GraphServiceClient};
use tonic::transport::Channel;

use super::cluster::{Cluster, agent_index, network_of, node_index, node_name};

/// A read-API client.
pub(crate) type Reader = GraphServiceClient<Channel>;

/// Connects a reader to `url`.
pub(crate) async fn reader(url: &str) -> anyhow::Result<Reader> {
    let ch = echomesh_proto::url::AggregatorUrl::parse(url)?
        .connect_with(Duration::from_secs(30), None, None)
        .await?;
    Ok(GraphServiceClient::new(ch).max_decoding_message_size(256 << 20))
}

/// The state of every edge from or to `node`, by (source agent, target agent).
pub(crate) async fn edges_of(
    c: &mut Reader,
    node: usize,
) -> anyhow::Result<HashMap<(usize, usize), v1::EdgeState>> {
    let mut out = HashMap::new();
    for (source, target) in [
        (node_name(node), String::new()),
        (String::new(), node_name(node)),
    ] {
        let mut page = String::new();
        loop {
            let r = c
                .list_edges(v1::ListEdgesRequest {
                    source_node: source.clone(),
                    target_node: target.clone(),
                    limit: 10_000,
                    page_token: page,
                    ..Default::default()
                })
                .await?
                .into_inner();
            for e in &r.edges {
                let (Some(s), Some(t)) = (node_index(&e.source_node), node_index(&e.target_node))
                else {
                    continue;
                };
                let key = (
                    agent_index(s, e.source_network()),
                    agent_index(t, e.target_network()),
                );
                out.insert(key, e.state());
            }
            if r.next_page_token.is_empty() {
                break;
            }
            page = r.next_page_token;
        }
    }
    Ok(out)
}

/// The culprits `Diagnose` names now.
pub(crate) async fn culprits(c: &mut Reader) -> anyhow::Result<Vec<v1::Culprit>> {
    Ok(c.diagnose(v1::DiagnoseRequest {
        network: 0,
        limit: 1000,
    })
    .await?
    .into_inner()
    .culprits)
}

/// `Summary` now.
pub(crate) async fn summary(c: &mut Reader) -> anyhow::Result<v1::SummaryResponse> {
    Ok(c.summary(v1::SummaryRequest {}).await?.into_inner())
}

/// Calls `GetEdge` on edges of the current lists every 5 ms until `stop`; the latencies (µs).
///
/// The caller runs on a thread and runtime of its own, with its own connection: on the load
/// generator's runtime its latency would include the queue of the 10,000 simulated sessions
/// beside it, which is the load generator's delay, not the aggregator's.
pub(crate) fn get_edge_loop(
    url: &str,
    cluster: Arc<Cluster>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<anyhow::Result<Vec<u32>>> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        crate::readers::on_own_thread(get_edges(url, cluster, stop))
    })
}

async fn get_edges(
    url: String,
    cluster: Arc<Cluster>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<u32>> {
    let mut c = reader(&url).await?;
    let mut out = Vec::new();
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let a = (k * 7919) % (cluster.nodes * super::cluster::PER_NODE);
        let list = cluster.list(a);
        let Some(&t) = list.get(k % list.len().max(1)) else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let t = t as usize;
        let start = Instant::now();
        let r = c
            .get_edge(v1::GetEdgeRequest {
                source_node: node_name(a / super::cluster::PER_NODE),
                source_network: network_of(a) as i32,
                target: node_name(t / super::cluster::PER_NODE),
                target_network: network_of(t) as i32,
            })
            .await;
        // An edge not reported yet (just assigned) is NOT_FOUND: still a served call.
        if r.is_ok() || r.as_ref().is_err_and(|s| s.code() == tonic::Code::NotFound) {
            out.push(start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(out)
}
