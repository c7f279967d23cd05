//! The readers that run during the fixed-load measurement.
//!
//! Ingest figures alone would hide a server that acks fast by starving its readers; so while the
//! agents report, `WatchEvents` subscribers, a `GetEdge` caller and a `Matrix` caller run too and
//! their latencies are reported next to the ingest figures. The `GetEdge` and `Matrix` callers
//! each run on their own thread, so what they time is the server, not the load generator's queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use echomesh_proto::v1::{self, graph_service_client::GraphServiceClient};
use tokio::task::JoinSet;

use crate::workload::{node_addr, node_name};

/// What one reader measured.
#[derive(Debug, Default)]
pub(crate) struct ReaderResult {
    /// `GetEdge` latencies, microseconds.
    pub(crate) get_edge_us: Vec<u32>,
    /// `Matrix` durations, milliseconds.
    pub(crate) matrix_ms: Vec<u32>,
    /// The matrix size seen.
    pub(crate) matrix_n: usize,
}

/// Starts `watchers` `WatchEvents` subscribers (counting into `events`), one `GetEdge` caller over
/// the `agents` simulated nodes and one `Matrix` caller, all until `stop`.
pub(crate) fn spawn(
    url: &str,
    agents: usize,
    watchers: usize,
    stop: &Arc<AtomicBool>,
    events: &Arc<AtomicU64>,
) -> JoinSet<anyhow::Result<ReaderResult>> {
    let mut readers = JoinSet::new();
    for _ in 0..watchers {
        let url = url.to_string();
        let stop = stop.clone();
        let events = events.clone();
        readers.spawn(async move {
            let mut c = GraphServiceClient::connect(url).await?;
            let mut s = c
                .watch_events(v1::WatchEventsRequest {
                    snapshot: false,
                    ..Default::default()
                })
                .await?
                .into_inner();
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), s.message()).await {
                    // A storm arrives counted (KIND_EDGE_STATES): count the edge changes it
                    // stands for, so the figure stays "edge changes delivered".
                    Ok(Ok(Some(ev))) => {
                        events.fetch_add(ev.edges.max(1), Ordering::Relaxed);
                    }
                    Ok(_) => break,
                    Err(_) => {}
                }
            }
            anyhow::Ok(ReaderResult::default())
        });
    }
    let (url2, stop2, n) = (url.to_string(), stop.clone(), agents);
    readers.spawn_blocking(move || {
        on_own_thread(async move {
            let mut c = GraphServiceClient::connect(url2).await?;
            let mut r = ReaderResult::default();
            let mut k = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                k += 1;
                let (src, dst) = (k * 7919 % n, (k * 104_729 + 1) % n);
                if src == dst {
                    continue;
                }
                let t = Instant::now();
                c.get_edge(v1::GetEdgeRequest {
                    source_node: node_name(src),
                    target: node_addr(dst),
                    ..Default::default()
                })
                .await?;
                r.get_edge_us.push(t.elapsed().as_micros() as u32);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            anyhow::Ok(r)
        })
    });
    let (url3, stop3) = (url.to_string(), stop.clone());
    readers.spawn_blocking(move || {
        on_own_thread(async move {
            let mut c = GraphServiceClient::connect(url3)
                .await?
                .max_decoding_message_size(256 << 20);
            let mut r = ReaderResult::default();
            while !stop3.load(Ordering::Relaxed) {
                let t = Instant::now();
                let m = c
                    .matrix(v1::MatrixRequest {
                        metric: v1::MatrixMetric::P99 as i32,
                        network: 0,
                        zone: None,
                    })
                    .await?
                    .into_inner();
                r.matrix_ms.push(t.elapsed().as_millis() as u32);
                r.matrix_n = m.nodes.len();
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            anyhow::Ok(r)
        })
    });
    readers
}

/// Runs `f` on this (blocking-pool) thread's own runtime, so the caller's latency is not the load
/// generator's: decoding a 1000 x 1000 Matrix takes milliseconds, and the simulated agents keep
/// the shared runtime busy. A connection `f` opens is driven by that runtime too.
pub(crate) fn on_own_thread<T>(
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
