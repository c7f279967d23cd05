//! `GraphService`: the read side of the graph for the CLI, grpcurl and the web page.
//!
//! Queries walk the per-agent slabs, locking one slab at a time and copying out only what they
//! need, so readers never stall ingest for longer than one agent's worth of records. Results are
//! bounded: pages of at most [`MAX_PAGE`] edges with an offset page token, a capped number of
//! quantiles, a capped number of watch subscribers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use echomesh_proto::v1::{
    self, EdgeSort, EdgeState, MatrixMetric, Network, Scope, event::Kind,
    graph_service_server::GraphService,
};
use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::events::GraphEvent;
use crate::graph::{AgentEntry, EdgeRecord, Endpoint, Graph};
use crate::ingest::Ingest;
use crate::sketch::{SKETCH_BUCKETS, SKETCH_RELATIVE_ERROR, quantile_ns};

/// Default page size of ListEdges.
pub const DEFAULT_PAGE: u32 = 1000;
/// Largest page of ListEdges.
pub const MAX_PAGE: u32 = 10_000;
/// Most quantiles per Percentiles request.
pub const MAX_QUANTILES: usize = 32;
const TOKEN_PREFIX: &str = "off:";

/// The query service (cheap to clone).
#[derive(Debug, Clone)]
pub struct Query {
    graph: Arc<Graph>,
    ingest: Ingest,
    started: tokio::time::Instant,
}

impl Query {
    /// Serves `graph`; `ingest` tells how many agents are connected.
    #[must_use]
    pub fn new(graph: Arc<Graph>, ingest: Ingest) -> Self {
        Self {
            graph,
            ingest,
            started: tokio::time::Instant::now(),
        }
    }
}

fn enum_arg<T: TryFrom<i32>>(v: i32, what: &str) -> Result<T, Status> {
    T::try_from(v).map_err(|_| Status::invalid_argument(format!("{what}: unknown value {v}")))
}

/// Parses a ListEdges page token into an offset.
pub fn parse_page_token(t: &str) -> Result<usize, Status> {
    if t.is_empty() {
        return Ok(0);
    }
    t.strip_prefix(TOKEN_PREFIX)
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "page_token {:?} is not a token returned by ListEdges",
                t.chars().take(40).collect::<String>()
            ))
        })
}

fn state_rank(s: EdgeState) -> u8 {
    match s {
        EdgeState::Down => 3,
        EdgeState::Degraded => 2,
        EdgeState::Unknown | EdgeState::Unspecified => 1,
        EdgeState::Up => 0,
    }
}

/// Edges matching a ListEdges filter, as (agent index, slot, sort key).
struct Hit {
    agent: usize,
    slot: usize,
    key: f64,
}

impl Query {
    /// Runs a whole-graph walk on the blocking pool, so a 1M-edge Matrix never stalls the runtime
    /// threads that serve agent sessions.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Query) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let q = self.clone();
        tokio::task::spawn_blocking(move || f(&q))
            .await
            .map_err(|e| Status::internal(format!("query task failed: {e}")))?
    }

    fn summary_blocking(
        &self,
        _req: Request<v1::SummaryRequest>,
    ) -> Result<Response<v1::SummaryResponse>, Status> {
        let mut r = v1::SummaryResponse::default();
        let agents = self.graph.agents();
        r.agents_known = agents.len() as u32;
        r.agents_connected = self.ingest.connected() as u32;
        for a in &agents {
            let slab = a.slab.lock();
            for rec in &slab.records {
                r.edges += 1;
                match rec.state() {
                    EdgeState::Up => r.edges_up += 1,
                    EdgeState::Degraded => r.edges_degraded += 1,
                    EdgeState::Down => r.edges_down += 1,
                    EdgeState::Unknown | EdgeState::Unspecified => r.edges_unknown += 1,
                }
            }
        }
        let c = &self.graph.counters;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        r.reports_merged = ld(&c.reports_merged);
        r.reports_duplicate = ld(&c.reports_duplicate);
        r.unknown_targets = ld(&c.unknown_targets);
        r.uptime_ms = self.started.elapsed().as_millis() as u64;
        Ok(Response::new(r))
    }

    fn list_nodes_blocking(
        &self,
        _req: Request<v1::ListNodesRequest>,
    ) -> Result<Response<v1::ListNodesResponse>, Status> {
        let now = self.graph.now();
        let nodes = self
            .graph
            .agents()
            .iter()
            .map(|a| {
                let info = a.info.lock().clone();
                let slab = a.slab.lock();
                let count =
                    |s: EdgeState| slab.records.iter().filter(|r| r.state() == s).count() as u32;
                v1::Node {
                    name: a.key.node.to_string(),
                    network: a.key.network as i32,
                    addresses: info.addresses.iter().map(ToString::to_string).collect(),
                    connected: info.connected,
                    last_report_age_ms: Graph::age_ms(now, slab.last_report),
                    edges_out: slab.records.len() as u32,
                    edges_down: count(EdgeState::Down),
                    edges_degraded: count(EdgeState::Degraded),
                    version: info.version,
                    generation: slab.generation,
                }
            })
            .collect();
        Ok(Response::new(v1::ListNodesResponse { nodes }))
    }

    fn list_edges_blocking(
        &self,
        req: Request<v1::ListEdgesRequest>,
    ) -> Result<Response<v1::ListEdgesResponse>, Status> {
        let r = req.into_inner();
        let network: Network = enum_arg(r.network, "network")?;
        let sort: EdgeSort = enum_arg(r.sort, "sort")?;
        let mut states = Vec::with_capacity(r.states.len());
        for &s in &r.states {
            let st: EdgeState = enum_arg(s, "states")?;
            states.push(st);
        }
        if !(0.0..=100.0).contains(&r.min_loss_pct) {
            return Err(Status::invalid_argument(format!(
                "min_loss_pct must be within 0..=100, got {}",
                r.min_loss_pct
            )));
        }
        if !(r.min_p99_us >= 0.0 && r.min_p99_us.is_finite()) {
            return Err(Status::invalid_argument(format!(
                "min_p99_us must be a non-negative number, got {}",
                r.min_p99_us
            )));
        }
        if r.limit > MAX_PAGE {
            return Err(Status::invalid_argument(format!(
                "limit must be at most {MAX_PAGE}, got {}",
                r.limit
            )));
        }
        let offset = parse_page_token(&r.page_token)?;
        let limit = if r.limit == 0 { DEFAULT_PAGE } else { r.limit } as usize;
        let eps = self.endpoints();
        let now = self.graph.now();
        let agents = self.graph.agents();
        let mut hits = Vec::new();
        for (ai, a) in agents.iter().enumerate() {
            if !r.source_node.is_empty() && *a.key.node != *r.source_node {
                continue;
            }
            if network != Network::Unspecified && a.key.network != network {
                continue;
            }
            let slab = a.slab.lock();
            for (slot, rec) in slab.records.iter().enumerate() {
                if !r.target_node.is_empty()
                    && eps
                        .get(&rec.target_id)
                        .is_none_or(|e| *e.node != *r.target_node)
                {
                    continue;
                }
                let st = rec.state();
                if !states.is_empty() && !states.contains(&st) {
                    continue;
                }
                let loss = rec.loss_1m_pct(now).unwrap_or(0.0);
                if loss < r.min_loss_pct {
                    continue;
                }
                let p99 = rec.rtt_quantile_ns(0.99).map_or(0.0, |v| v / 1000.0);
                if r.min_p99_us > 0.0 && p99 < r.min_p99_us {
                    continue;
                }
                let key = match sort {
                    EdgeSort::Unspecified => 0.0,
                    EdgeSort::Loss => -loss,
                    EdgeSort::P99 => -p99,
                    EdgeSort::State => -f64::from(state_rank(st)),
                };
                hits.push(Hit {
                    agent: ai,
                    slot,
                    key,
                });
            }
        }
        if sort != EdgeSort::Unspecified {
            hits.sort_by(|a, b| a.key.total_cmp(&b.key));
        }
        let total = hits.len();
        let page: Vec<v1::Edge> = hits
            .iter()
            .skip(offset)
            .take(limit)
            .filter_map(|h| {
                let a = &agents[h.agent];
                let rec: EdgeRecord = *a.slab.lock().records.get(h.slot)?;
                Some(self.graph.edge_view(&a.key, &rec, now))
            })
            .collect();
        let next = offset.saturating_add(limit);
        Ok(Response::new(v1::ListEdgesResponse {
            edges: page,
            next_page_token: if next < total {
                format!("{TOKEN_PREFIX}{next}")
            } else {
                String::new()
            },
            total_matched: total as u64,
        }))
    }

    fn matrix_blocking(
        &self,
        req: Request<v1::MatrixRequest>,
    ) -> Result<Response<v1::MatrixResponse>, Status> {
        let r = req.into_inner();
        let metric: MatrixMetric = enum_arg(r.metric, "metric")?;
        let network: Network = enum_arg(r.network, "network")?;
        let metric = if metric == MatrixMetric::Unspecified {
            MatrixMetric::Loss
        } else {
            metric
        };
        let agents: Vec<_> = self
            .graph
            .agents()
            .into_iter()
            .filter(|a| network == Network::Unspecified || a.key.network == network)
            .collect();
        let mut nodes: Vec<String> = agents.iter().map(|a| a.key.node.to_string()).collect();
        nodes.dedup();
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let target_index: crate::graph::IdMap<usize> = self
            .graph
            .endpoints()
            .into_iter()
            .filter(|(_, e)| network == Network::Unspecified || e.network == network)
            .filter_map(|(id, e)| Some((id, *index.get(&*e.node)?)))
            .collect();
        let n = nodes.len();
        let mut values = vec![f64::NAN; n * n];
        let mut states = vec![EdgeState::Unspecified as i32; n * n];
        let now = self.graph.now();
        for a in &agents {
            let Some(&i) = index.get(&*a.key.node) else {
                continue;
            };
            let slab = a.slab.lock();
            for rec in &slab.records {
                let Some(&j) = target_index.get(&rec.target_id) else {
                    continue;
                };
                let v = match metric {
                    MatrixMetric::Loss | MatrixMetric::Unspecified => rec.loss_1m_pct(now),
                    MatrixMetric::P50 => rec.rtt_quantile_ns(0.5).map(|v| v / 1000.0),
                    MatrixMetric::P99 => rec.rtt_quantile_ns(0.99).map(|v| v / 1000.0),
                };
                let cell = i * n + j;
                if let Some(v) = v
                    && (values[cell].is_nan() || v > values[cell])
                {
                    values[cell] = v;
                }
                let st = rec.state();
                let cur = EdgeState::try_from(states[cell]).unwrap_or(EdgeState::Unspecified);
                if cur == EdgeState::Unspecified || state_rank(st) > state_rank(cur) {
                    states[cell] = st as i32;
                }
            }
        }
        Ok(Response::new(v1::MatrixResponse {
            nodes,
            values,
            states,
            metric: metric as i32,
        }))
    }

    fn endpoints(&self) -> HashMap<u64, Endpoint> {
        self.graph.endpoints().into_iter().collect()
    }

    /// The agent on `node`: by key, pod network first when `network` is unspecified.
    fn find_agent(&self, node: &str, network: Network) -> Option<Arc<AgentEntry>> {
        let nets: &[Network] = match network {
            Network::Unspecified => &[Network::Pod, Network::Host],
            Network::Pod => &[Network::Pod],
            Network::Host => &[Network::Host],
        };
        nets.iter().find_map(|&n| {
            self.graph.agent(&crate::graph::AgentKey {
                node: node.into(),
                network: n,
            })
        })
    }

    /// Ids of the endpoints `target` names (a node name or an address), pod network first.
    fn target_ids(&self, target: &str, network: Network) -> Vec<(u64, Network)> {
        let net_ok = |n: Network| network == Network::Unspecified || n == network;
        let mut ids: Vec<(u64, Network)> = match target.parse::<IpAddr>() {
            Ok(ip) => self
                .graph
                .endpoints_with_addr(ip)
                .into_iter()
                .filter(|(_, n)| net_ok(*n))
                .collect(),
            Err(_) => [Network::Pod, Network::Host]
                .into_iter()
                .filter(|&n| net_ok(n))
                .filter_map(|n| {
                    self.graph.agent(&crate::graph::AgentKey {
                        node: target.into(),
                        network: n,
                    })
                })
                .flat_map(|a| {
                    let net = a.key.network;
                    let node = a.key.node.clone();
                    let addrs = a.info.lock().addresses.clone();
                    addrs
                        .into_iter()
                        .map(move |ip| (crate::graph::endpoint_id(&node, net, ip), net))
                })
                .collect(),
        };
        ids.sort_by_key(|&(_, n)| n != Network::Pod);
        ids
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::Event, Status>> + Send>>;

#[tonic::async_trait]
impl GraphService for Query {
    type WatchEventsStream = EventStream;

    async fn summary(
        &self,
        req: Request<v1::SummaryRequest>,
    ) -> Result<Response<v1::SummaryResponse>, Status> {
        self.blocking(move |q| q.summary_blocking(req)).await
    }

    async fn list_nodes(
        &self,
        req: Request<v1::ListNodesRequest>,
    ) -> Result<Response<v1::ListNodesResponse>, Status> {
        self.blocking(move |q| q.list_nodes_blocking(req)).await
    }

    async fn list_edges(
        &self,
        req: Request<v1::ListEdgesRequest>,
    ) -> Result<Response<v1::ListEdgesResponse>, Status> {
        self.blocking(move |q| q.list_edges_blocking(req)).await
    }

    async fn get_edge(
        &self,
        req: Request<v1::GetEdgeRequest>,
    ) -> Result<Response<v1::Edge>, Status> {
        let r = req.into_inner();
        if r.source_node.is_empty() || r.target.is_empty() {
            return Err(Status::invalid_argument(
                "source_node and target are required",
            ));
        }
        let src_net: Network = enum_arg(r.source_network, "source_network")?;
        let dst_net: Network = enum_arg(r.target_network, "target_network")?;
        let agent = self
            .find_agent(&r.source_node, src_net)
            .ok_or_else(|| Status::not_found(format!("no agent on node {:?}", r.source_node)))?;
        let ids = self.target_ids(&r.target, dst_net);
        let now = self.graph.now();
        let found = {
            let slab = agent.slab.lock();
            ids.iter().find_map(|(id, _)| {
                slab.records
                    .iter()
                    .find(|rec| rec.target_id == *id)
                    .copied()
            })
        };
        let rec = found.ok_or_else(|| {
            Status::not_found(format!("no edge from {} to {:?}", agent.key, r.target))
        })?;
        Ok(Response::new(self.graph.edge_view(&agent.key, &rec, now)))
    }

    async fn matrix(
        &self,
        req: Request<v1::MatrixRequest>,
    ) -> Result<Response<v1::MatrixResponse>, Status> {
        self.blocking(move |q| q.matrix_blocking(req)).await
    }

    async fn percentiles(
        &self,
        req: Request<v1::PercentilesRequest>,
    ) -> Result<Response<v1::PercentilesResponse>, Status> {
        let r = req.into_inner();
        let scope: Scope = enum_arg(r.scope, "scope")?;
        let network: Network = enum_arg(r.network, "network")?;
        let quantiles = if r.quantiles.is_empty() {
            vec![0.5, 0.9, 0.99]
        } else {
            r.quantiles.clone()
        };
        if quantiles.len() > MAX_QUANTILES {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_QUANTILES} quantiles per request, got {}",
                quantiles.len()
            )));
        }
        if let Some(q) = quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(Status::invalid_argument(format!(
                "quantiles must be within 0..=1, got {q}"
            )));
        }
        let mut acc = [0u64; SKETCH_BUCKETS];
        let mut edges = 0u32;
        match scope {
            Scope::Unspecified | Scope::Cluster | Scope::Node => {
                if scope == Scope::Node && r.node.is_empty() {
                    return Err(Status::invalid_argument("scope NODE needs node"));
                }
                for a in self.graph.agents() {
                    if scope == Scope::Node && *a.key.node != *r.node {
                        continue;
                    }
                    if network != Network::Unspecified && a.key.network != network {
                        continue;
                    }
                    let slab = a.slab.lock();
                    crate::graph::accumulate(&slab.records, &mut acc);
                    edges += slab.records.len() as u32;
                }
            }
            Scope::Edge => {
                let e = self
                    .get_edge(Request::new(v1::GetEdgeRequest {
                        source_node: r.node.clone(),
                        source_network: r.network,
                        target: r.target.clone(),
                        target_network: 0,
                    }))
                    .await?
                    .into_inner();
                let agent = self
                    .find_agent(&r.node, network)
                    .ok_or_else(|| Status::not_found("edge vanished"))?;
                let slab = agent.slab.lock();
                if let Some(rec) = slab.records.iter().find(|x| x.target_id == e.target_id) {
                    rec.sketch().add_to(&mut acc);
                    edges = 1;
                }
            }
        }
        let values_us = quantiles
            .iter()
            .map(|&q| quantile_ns(&acc, q).map_or(0.0, |v| v / 1000.0))
            .collect();
        Ok(Response::new(v1::PercentilesResponse {
            quantiles,
            values_us,
            samples: acc.iter().sum(),
            relative_error: SKETCH_RELATIVE_ERROR,
            edges,
        }))
    }

    async fn watch_events(
        &self,
        req: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let snapshot = req.into_inner().snapshot;
        let sub = self
            .graph
            .events
            .subscribe()
            .ok_or_else(|| Status::resource_exhausted("too many WatchEvents subscribers"))?;
        let (tx, rx) = mpsc::channel(1024);
        let graph = self.graph.clone();
        let closing = self.ingest.closing();
        tokio::spawn(async move {
            tokio::select! {
                () = closing => {
                    let _ = tx.try_send(Err(Status::unavailable("aggregator shutting down")));
                }
                () = forward(graph, sub, tx.clone(), snapshot) => {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Turns a compact ingest event into the wire form (names, addresses).
fn render_event(graph: &Graph, ev: GraphEvent) -> v1::Event {
    match ev {
        GraphEvent::Edge {
            src,
            target,
            from,
            to,
            at_ms,
        } => {
            let ep = graph.endpoint(target);
            v1::Event {
                kind: Kind::EdgeState as i32,
                at_unix_ms: at_ms,
                source_node: src.node.to_string(),
                source_network: src.network as i32,
                target_node: ep.as_ref().map(|e| e.node.to_string()).unwrap_or_default(),
                expected_down: ep.as_ref().is_some_and(|e| graph.is_expected_down(&e.node)),
                target_address: ep.map(|e| e.addr.to_string()).unwrap_or_default(),
                from: from as i32,
                to: to as i32,
                ..v1::Event::default()
            }
        }
        GraphEvent::Agent {
            kind,
            src,
            message,
            at_ms,
        } => v1::Event {
            kind: kind as i32,
            at_unix_ms: at_ms,
            source_node: src.node.to_string(),
            source_network: src.network as i32,
            message,
            ..v1::Event::default()
        },
    }
}

async fn forward(
    graph: Arc<Graph>,
    mut sub: crate::events::Subscription,
    tx: mpsc::Sender<Result<v1::Event, Status>>,
    snapshot: bool,
) {
    {
        if snapshot {
            let now = graph.now();
            for a in graph.agents() {
                let recs: Vec<EdgeRecord> = a.slab.lock().records.clone();
                for rec in recs {
                    let e = graph.edge_view(&a.key, &rec, now);
                    let ev = v1::Event {
                        kind: Kind::EdgeState as i32,
                        at_unix_ms: crate::events::unix_ms(),
                        source_node: e.source_node,
                        source_network: e.source_network,
                        target_node: e.target_node,
                        target_address: e.target_address,
                        from: e.state,
                        to: e.state,
                        message: "snapshot".into(),
                        missed: 0,
                        expected_down: e.expected_down,
                    };
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
            }
            let done = v1::Event {
                kind: Kind::SnapshotDone as i32,
                at_unix_ms: crate::events::unix_ms(),
                ..v1::Event::default()
            };
            if tx.send(Ok(done)).await.is_err() {
                return;
            }
        }
        loop {
            let ev = match sub.rx.recv().await {
                Ok(ev) => render_event(&graph, ev),
                Err(broadcast::error::RecvError::Lagged(n)) => v1::Event {
                    kind: Kind::Lagged as i32,
                    at_unix_ms: crate::events::unix_ms(),
                    missed: n,
                    message: format!("subscriber fell behind and missed {n} events"),
                    ..v1::Event::default()
                },
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(ev)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens() {
        assert_eq!(parse_page_token("").ok(), Some(0));
        assert_eq!(parse_page_token("off:20").ok(), Some(20));
        let e = parse_page_token("garbage").expect_err("bad");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("not a token"), "{}", e.message());
    }
}
