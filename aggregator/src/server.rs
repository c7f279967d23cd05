//! The aggregator as a process: binds its listeners first (so tests can bind `127.0.0.1:0` and
//! learn the ports), wires the layers together, serves gRPC and HTTP until the shutdown future
//! resolves, then drains. Every layer below stays free of listener and lifecycle concerns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::bound::body::{Check, CheckedService};
use echomesh_proto::bound::{AgentMessageLimits, check_agent_message};
use echomesh_proto::v1::agent_service_server::AgentServiceServer;
use echomesh_proto::v1::graph_service_server::GraphServiceServer;
use echomesh_runtime::listen::bind_tcp;
use futures::StreamExt as _;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};

use crate::auth::{AgentAuth, token::SharedToken};
use crate::discovery::token_review::TokenReviewAuth;
use crate::{Config, Graph, Ingest, api, discovery, graph, http, policy, readiness};

/// Why the aggregator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {what}: {source}")]
    Bind {
        /// Which listener.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reflection could not load the descriptor set.
    #[error("gRPC reflection setup failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    /// Agent authentication could not be set up (e.g. an unusable --agent-token-file).
    #[error("agent authentication: {0}")]
    Auth(String),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Longest graceful drain after the shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound, not yet serving aggregator.
#[derive(Debug)]
pub struct Aggregator {
    cfg: Config,
    grpc: TcpListener,
    http: TcpListener,
    unix: Option<(UnixListener, PathBuf)>,
    graph: Arc<Graph>,
    ingest: Ingest,
    readiness: Arc<readiness::Readiness>,
    discovery: Option<DiscoverySetup>,
    auth: Option<Arc<dyn AgentAuth>>,
    tls: Option<Arc<crate::tls::ReloadingCert>>,
    /// The diagnosis every reader shares (RPC, JSON API, `/metrics`, node conditions).
    verdicts: crate::diagnose::Verdicts,
}

/// Kubernetes discovery wiring: the model-backed pinglist and, in tests, an injected client.
struct DiscoverySetup {
    pinglist: Arc<discovery::ModelPinglist>,
    client: Option<kube::Client>,
    /// Where node conditions are written, when not through `client` (tests).
    node_condition_client: Option<kube::Client>,
}

impl std::fmt::Debug for DiscoverySetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoverySetup")
            .field("pinglist", &self.pinglist)
            .field("injected_client", &self.client.is_some())
            .field(
                "node_condition_client",
                &self.node_condition_client.is_some(),
            )
            .finish()
    }
}

/// The `--pinglist` policy over `full` (the full mesh, or the Kubernetes model), with the zones
/// discovery set on the graph.
fn policy_over(
    cfg: &Config,
    graph: &Arc<Graph>,
    full: Arc<dyn policy::PinglistSource>,
) -> Arc<dyn policy::PinglistSource> {
    let g = graph.clone();
    policy::select(
        cfg.pinglist,
        &cfg.budget(),
        full,
        Arc::new(move || g.node_zones()),
    )
}

impl Aggregator {
    /// Binds every listener from `cfg`.
    pub async fn bind(cfg: Config) -> Result<Self, ServerError> {
        let grpc = bind_tcp(cfg.grpc_listen).map_err(|source| ServerError::Bind {
            what: format!("gRPC {}", cfg.grpc_listen),
            source,
        })?;
        let http = bind_tcp(cfg.http_listen).map_err(|source| ServerError::Bind {
            what: format!("HTTP {}", cfg.http_listen),
            source,
        })?;
        let unix = match &cfg.agent_socket {
            None => None,
            Some(path) => {
                let l = bind_private_socket(path).map_err(|source| ServerError::Bind {
                    what: format!("unix socket {}", path.display()),
                    source,
                })?;
                Some((l, path.clone()))
            }
        };
        let events = graph::EventHub::new(8192, cfg.max_watchers);
        let graph = Arc::new(Graph::new(cfg.graph(), events));
        let auth: Option<Arc<dyn AgentAuth>> = match &cfg.agent_token_file {
            Some(path) => Some(Arc::new(
                SharedToken::open(path).map_err(|e| ServerError::Auth(e.to_string()))?,
            )),
            None => None,
        };
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(crate::tls::ReloadingCert::open(cert, key)?)),
            _ => None,
        };
        let mut agg = Self {
            tls,
            verdicts: crate::diagnose::Verdicts::default(),
            ingest: Ingest::with_auth(
                graph.clone(),
                cfg.ingest(),
                policy_over(&cfg, &graph, Arc::new(policy::FullMesh)),
                auth.clone(),
            ),
            auth,
            cfg,
            grpc,
            http,
            unix,
            graph,
            readiness: Arc::new(readiness::Readiness::default()),
            discovery: None,
        };
        if agg.cfg.kubernetes {
            agg.enable_discovery(None);
        }
        Ok(agg)
    }

    /// Enables Kubernetes discovery through `client` (a mocked API server in tests), whatever
    /// `--kubernetes` says. Call before [`Aggregator::serve`].
    #[must_use]
    pub fn with_kube_client(mut self, client: kube::Client) -> Self {
        self.enable_discovery(Some(client));
        self
    }

    /// Verifies agent tokens through `client` (a mocked API server in tests) instead of the
    /// discovery client. Call after [`Aggregator::with_kube_client`] and before serve; it has an
    /// effect only with `--agent-token-review`.
    #[must_use]
    pub fn with_token_review_client(mut self, client: kube::Client) -> Self {
        if self.cfg.agent_token_review
            && let Some(setup) = &self.discovery
        {
            let pinglist = setup.pinglist.clone();
            self.auth = Some(Arc::new(TokenReviewAuth::new(
                Some(client),
                pinglist.clone(),
                &self.cfg.namespace,
            )));
            self.ingest = Ingest::with_auth(
                self.graph.clone(),
                self.cfg.ingest(),
                policy_over(&self.cfg, &self.graph, pinglist),
                self.auth.clone(),
            );
        }
        self
    }

    /// Writes node conditions through `client` (a mocked API server in tests) instead of the
    /// discovery client. Call after [`Aggregator::with_kube_client`] and before serve; it has an
    /// effect only with `--node-condition-after`.
    #[must_use]
    pub fn with_node_condition_client(mut self, client: kube::Client) -> Self {
        if let Some(setup) = &mut self.discovery {
            setup.node_condition_client = Some(client);
        }
        self
    }

    fn enable_discovery(&mut self, client: Option<kube::Client>) {
        let pinglist = Arc::new(discovery::ModelPinglist::default());
        if self.cfg.agent_token_review {
            self.auth = Some(Arc::new(TokenReviewAuth::new(
                client.clone(),
                pinglist.clone(),
                &self.cfg.namespace,
            )));
        }
        // No session exists before serve(), so swapping the ingest loses nothing.
        self.ingest = Ingest::with_auth(
            self.graph.clone(),
            self.cfg.ingest(),
            policy_over(&self.cfg, &self.graph, pinglist.clone()),
            self.auth.clone(),
        );
        self.discovery = Some(DiscoverySetup {
            pinglist,
            client,
            node_condition_client: None,
        });
    }

    /// Readiness (what `/readyz` reports).
    #[must_use]
    pub fn readiness(&self) -> Arc<readiness::Readiness> {
        self.readiness.clone()
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().unwrap_or(self.cfg.grpc_listen)
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or(self.cfg.http_listen)
    }

    /// The graph (for embedding and tests).
    #[must_use]
    pub fn graph(&self) -> Arc<Graph> {
        self.graph.clone()
    }

    fn routes(
        &self,
        walks: crate::limit::WalkLimit,
    ) -> Result<tonic::service::Routes, ServerError> {
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(echomesh_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(echomesh_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let agent = crate::ingest::inbound::AgentServer::new(
            self.ingest.clone(),
            self.cfg.max_message_bytes,
        );
        let agent = CheckedService::new(
            agent,
            agent_message_check(&self.cfg),
            self.cfg.max_message_bytes,
        );
        let graph = GraphServiceServer::new(
            api::Query::new(self.graph.clone(), self.ingest.clone())
                .with_walk_limit(walks)
                .with_verdicts(self.verdicts.clone()),
        )
        .max_encoding_message_size(256 * 1024 * 1024);
        let mut b = tonic::service::Routes::builder();
        b.add_service(agent)
            .add_service(graph)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        Ok(b.routes())
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn serve(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<AgentServiceServer<Ingest>>()
            .await;
        health_reporter
            .set_serving::<GraphServiceServer<api::Query>>()
            .await;

        let ready = self.readiness.clone();
        let mut tasks = tokio::task::JoinSet::new();

        let node_condition_counters = crate::node_conditions::WriteCounters::default();
        if let Some(setup) = self.discovery.take() {
            if let Some(after) = self.cfg.node_condition_after {
                tasks.spawn(node_conditions(
                    after,
                    setup
                        .node_condition_client
                        .clone()
                        .or_else(|| setup.client.clone()),
                    self.graph.clone(),
                    self.verdicts.clone(),
                    setup.pinglist.clone(),
                    node_condition_counters.clone(),
                    stopped(stop_rx.clone()),
                ));
            }
            let d = discovery::Discovery::new(
                self.cfg.discovery(),
                setup.pinglist,
                self.ingest.clone(),
                self.graph.clone(),
                ready.clone(),
            );
            let s = stopped(stop_rx.clone());
            tasks.spawn(async move {
                match setup.client {
                    Some(c) => d.run(c, s).await,
                    None => d.run_inferred(s).await,
                }
                Ok(())
            });
        }

        // Pinglist assigner and the staleness sweep.
        tasks.spawn({
            let ingest = self.ingest.clone();
            let s = stopped(stop_rx.clone());
            async move {
                ingest.run_assigner(s).await;
                Ok(())
            }
        });
        tasks.spawn({
            let graph = self.graph.clone();
            let ingest = self.ingest.clone();
            let mut rx = stop_rx.clone();
            let every = (self.cfg.report_interval / 2).max(Duration::from_millis(50));
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = rx.wait_for(|s| *s) => return Ok(()),
                    }
                    if graph.sweep() {
                        ingest.membership_changed();
                    }
                }
            }
        });

        let grpc_walks = crate::limit::WalkLimit::default();
        let json_walks = crate::limit::WalkLimit::default();
        let routes = self.routes(grpc_walks.clone())?;
        // One limit for the gRPC listeners (TCP and unix socket), one for HTTP.
        let grpc_limit =
            crate::conn::ConnLimit::new(self.cfg.max_connections as usize, self.cfg.idle_timeout);
        let http_limit =
            crate::conn::ConnLimit::new(self.cfg.max_connections as usize, self.cfg.idle_timeout);
        if let Some(certs) = self.tls.clone() {
            let cfg = crate::tls::server_config(certs)
                .map_err(|e| ServerError::Auth(format!("TLS setup: {e}")))?;
            // Connections count against the limit once their TLS handshake is done.
            let incoming = grpc_limit
                .clone()
                .incoming(crate::tls::incoming(self.grpc, cfg));
            let routes = routes.clone();
            let health = health.clone();
            let s = stopped(stop_rx.clone());
            tasks.spawn(async move {
                crate::conn::grpc_server()
                    .add_routes(routes)
                    .add_service(health)
                    .serve_with_incoming_shutdown(incoming, s)
                    .await
                    .map_err(ServerError::from)
            });
        } else {
            let tcp = TcpListenerStream::new(self.grpc).map(|s| {
                if let Ok(s) = &s {
                    let _ = s.set_nodelay(true);
                }
                s
            });
            let tcp = grpc_limit.clone().incoming(tcp);
            let routes = routes.clone();
            let health = health.clone();
            let s = stopped(stop_rx.clone());
            tasks.spawn(async move {
                crate::conn::grpc_server()
                    .add_routes(routes)
                    .add_service(health)
                    .serve_with_incoming_shutdown(tcp, s)
                    .await
                    .map_err(ServerError::from)
            });
        }
        if let Some((unix, path)) = self.unix {
            let grpc_limit = grpc_limit.clone();
            let routes = routes.clone();
            let health = health.clone();
            let s = stopped(stop_rx.clone());
            tasks.spawn(async move {
                let r = crate::conn::grpc_server()
                    .add_routes(routes)
                    .add_service(health)
                    .serve_with_incoming_shutdown(
                        grpc_limit.clone().incoming(UnixListenerStream::new(unix)),
                        s,
                    )
                    .await
                    .map_err(ServerError::from);
                let _ = std::fs::remove_file(&path);
                r
            });
        }
        tasks.spawn({
            let mut metrics = http::Metrics::sharing(
                self.graph.clone(),
                self.ingest.clone(),
                self.cfg.metrics(),
                self.verdicts.clone(),
            )
            .with_collector(Box::new(crate::conn::ConnCollector {
                grpc: grpc_limit.clone(),
                http: http_limit.clone(),
            }));
            if self.cfg.node_condition_after.is_some() {
                metrics = metrics.with_collector(Box::new(node_condition_counters));
            }
            let scrapes = metrics.scrape_limit().clone();
            metrics = metrics.with_collector(Box::new(crate::limit::RefusedCollector(vec![
                ("grpc", grpc_walks),
                ("json", json_walks.clone()),
                ("metrics", scrapes),
            ])));
            let api = http::JsonApi::new(
                api::Query::new(self.graph.clone(), self.ingest.clone())
                    .with_walk_limit(json_walks)
                    .with_verdicts(self.verdicts.clone()),
            );
            let app = http::router(ready.clone(), metrics, api);
            let s = stopped(stop_rx.clone());
            let http = self.http;
            async move {
                axum::serve(http_limit.listener(http), app)
                    .with_graceful_shutdown(s)
                    .await
                    .map_err(ServerError::Http)
            }
        });
        tracing::info!("aggregator serving");

        tokio::pin!(shutdown);
        let mut result = Ok(());
        tokio::select! {
            () = &mut shutdown => {}
            Some(r) = tasks.join_next() => {
                // A server task ended on its own: that is a failure.
                if let Ok(Err(e)) = r {
                    result = Err(e);
                }
            }
        }
        ready.set_serving(false);
        self.ingest.close_all();
        let _ = stop_tx.send(true);
        let drain = async {
            while let Some(r) = tasks.join_next().await {
                if let Ok(Err(e)) = r
                    && result.is_ok()
                {
                    result = Err(e);
                }
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            tracing::warn!("connections did not drain in time; closing them");
        }
        result
    }
}

/// The node-conditions writer over `graph`'s diagnosis, writing only nodes of the cluster model.
async fn node_conditions(
    after: Duration,
    client: Option<kube::Client>,
    graph: Arc<Graph>,
    verdicts: crate::diagnose::Verdicts,
    pinglist: Arc<discovery::ModelPinglist>,
    counters: crate::node_conditions::WriteCounters,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    use crate::node_conditions::{NodeConditionConfig, NodeConditions, now_unix_ms};
    let w = NodeConditions::new(
        NodeConditionConfig::new(after),
        client,
        Arc::new(move || {
            let v = verdicts.get(&graph, echomesh_proto::v1::Network::Unspecified);
            (v.diagnosis.clone(), now_unix_ms())
        }),
        Arc::new(move |node| pinglist.model().is_some_and(|m| m.nodes.contains_key(node))),
        counters,
    );
    w.run(shutdown).await;
    Ok(())
}

/// Binds a unix socket that only this user can connect to (mode 0600): the socket is created
/// under a temporary name, restricted, then renamed into place, so there is no moment when
/// another local user could connect. A stale socket file from a previous run is replaced.
fn bind_private_socket(path: &std::path::Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let l = UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(l)
}

/// Binds and serves `cfg` until `shutdown` resolves.
pub async fn run(
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Aggregator::bind(cfg).await?.serve(shutdown).await
}

/// The check every agent message passes before it is decoded: at most the largest assignment's
/// entries (see `echomesh_proto::bound`), so a small message cannot decode into a huge one.
fn agent_message_check(cfg: &Config) -> Check {
    let limits = AgentMessageLimits {
        report_targets: cfg.report_entry_cap(),
        sizes_per_target: cfg.payload_sizes.len().max(1),
        hello_addresses: crate::ingest::hello::MAX_ADDRESSES,
    };
    Arc::new(move |m: &[u8]| check_agent_message(m, &limits).map_err(|e| e.to_status()))
}
