//! A real aggregator inside the test process, on `127.0.0.1:0`.
//!
//! Tests check the aggregator the way agents and the CLI see it, over real gRPC and HTTP, so they
//! run the production server, not a mock. Port 0 lets suites run in parallel; the handle owns the
//! server so a failing test cannot leave it running (dropping it stops the server).

pub mod mesh;
pub mod scenarios;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use echomesh_aggregator::{Aggregator, Config, Graph};
use echomesh_proto::v1::{self, graph_service_client::GraphServiceClient};
use tokio::sync::oneshot;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::SOON;

/// A running in-process aggregator; dropping it stops the server.
#[derive(Debug)]
pub struct TestAggregator {
    /// The bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// The bound HTTP address (`/metrics`, `/readyz`, the web page).
    pub http_addr: SocketAddr,
    /// The server's graph, for assertions on what it stored.
    pub graph: Arc<Graph>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The local test configuration: loopback listeners, and a short assign debounce so
/// assignments follow connections within milliseconds.
#[must_use]
pub fn test_config() -> Config {
    let mut cfg = Config::local();
    cfg.assign_debounce = Duration::from_millis(20);
    cfg
}

impl TestAggregator {
    /// Starts an aggregator with [`test_config`] changed by `tweak`.
    ///
    /// # Panics
    ///
    /// When a listener cannot be bound.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = test_config();
        tweak(&mut cfg);
        Self::serve(Aggregator::bind(cfg).await.expect("bind")).await
    }

    /// Starts an aggregator whose Kubernetes discovery talks to `client` (a mocked API server),
    /// with a short discovery debounce, then `tweak`.
    ///
    /// # Panics
    ///
    /// When a listener cannot be bound.
    pub async fn start_with_kube(client: kube::Client, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = test_config();
        cfg.discovery_debounce = Duration::from_millis(20);
        tweak(&mut cfg);
        let agg = Aggregator::bind(cfg)
            .await
            .expect("bind")
            .with_kube_client(client);
        Self::serve(agg).await
    }

    /// [`TestAggregator::start_with_kube`] with node conditions after `after`, written to
    /// `writes` (a [`crate::k8s::write_api::WriteApi`] client).
    ///
    /// # Panics
    ///
    /// When a listener cannot be bound.
    pub async fn start_with_node_conditions(
        client: kube::Client,
        writes: kube::Client,
        after: Duration,
    ) -> Self {
        let mut cfg = test_config();
        cfg.discovery_debounce = Duration::from_millis(20);
        cfg.kubernetes = true;
        cfg.node_condition_after = Some(after);
        // Edges must not go stale while the test waits for the writes.
        cfg.report_interval = Duration::from_secs(600);
        let agg = Aggregator::bind(cfg)
            .await
            .expect("bind")
            .with_kube_client(client)
            .with_node_condition_client(writes);
        Self::serve(agg).await
    }

    /// [`TestAggregator::start_with_kube`] with `--agent-token-review`, reviews going to
    /// `review` (a [`crate::k8s::token_review::MockTokenReview`] client).
    ///
    /// # Panics
    ///
    /// When a listener cannot be bound.
    pub async fn start_with_token_review(
        client: kube::Client,
        review: kube::Client,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut cfg = test_config();
        cfg.discovery_debounce = Duration::from_millis(20);
        cfg.kubernetes = true;
        cfg.agent_token_review = true;
        tweak(&mut cfg);
        let agg = Aggregator::bind(cfg)
            .await
            .expect("bind")
            .with_kube_client(client)
            .with_token_review_client(review);
        Self::serve(agg).await
    }

    async fn serve(agg: Aggregator) -> Self {
        let (grpc_addr, http_addr, graph) = (agg.grpc_addr(), agg.http_addr(), agg.graph());
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            agg.serve(async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Self {
            grpc_addr,
            http_addr,
            graph,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The gRPC URL (`http://127.0.0.1:PORT`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// A new gRPC connection.
    ///
    /// # Panics
    ///
    /// When the server does not accept it.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }

    /// A `GraphService` client on a new connection (large replies allowed).
    pub async fn graph_client(&self) -> GraphServiceClient<Channel> {
        GraphServiceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    /// The graph's summary (`GraphService/Summary`).
    ///
    /// # Panics
    ///
    /// When the call fails.
    pub async fn summary(&self) -> v1::SummaryResponse {
        self.graph_client()
            .await
            .summary(v1::SummaryRequest {})
            .await
            .expect("summary")
            .into_inner()
    }

    /// Every node the graph knows (`GraphService/ListNodes`).
    ///
    /// # Panics
    ///
    /// When the call fails.
    pub async fn nodes(&self) -> Vec<v1::Node> {
        self.graph_client()
            .await
            .list_nodes(v1::ListNodesRequest {})
            .await
            .expect("nodes")
            .into_inner()
            .nodes
    }

    /// The edge from `source` to `target` (`GraphService/GetEdge`; `node[/network[/address]]`).
    ///
    /// # Panics
    ///
    /// When the call fails (no such edge, among others).
    pub async fn edge(&self, source: &str, target: &str) -> v1::Edge {
        self.graph_client()
            .await
            .get_edge(v1::GetEdgeRequest {
                source_node: source.into(),
                target: target.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("edge {source} -> {target}: {e}"))
            .into_inner()
    }

    /// A `GraphService/WatchEvents` stream of every event, after a snapshot when `snapshot`.
    ///
    /// # Panics
    ///
    /// When the call fails.
    pub async fn watch_events(&self, snapshot: bool) -> Streaming<v1::Event> {
        self.graph_client()
            .await
            .watch_events(v1::WatchEventsRequest {
                snapshot,
                ..Default::default()
            })
            .await
            .expect("watch")
            .into_inner()
    }

    /// Stops the server and waits for its graceful drain.
    ///
    /// # Panics
    ///
    /// When it does not stop within [`SOON`] or the server failed.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(SOON, t)
                .await
                .expect("server stops")
                .expect("server task");
        }
    }
}

impl Drop for TestAggregator {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
