//! Kubernetes discovery (`--kubernetes`): Node and agent-Pod reflectors -> cluster model ->
//! pinglists.
//!
//! Why the aggregator and not the agents watch the API: one watcher pair per cluster instead of
//! one per node (API-server load grows with N, not N²), and agents need no API access at all (their
//! projected token only proves who they are: [`token_review`]).
//!
//! How it flows: two kube-rs `watcher`s (Nodes, cluster-wide; agent Pods by label selector in one
//! namespace), managed fields stripped before they reach the `reflector` stores, feed one loop.
//! Any event marks the model dirty; after a short debounce ([`DiscoveryConfig::debounce`]) the
//! model is rebuilt from the stores ([`model::ClusterModel::build`]) and, only when it changed in a
//! way pinglists can see, published to [`ModelPinglist`] and the ingest is asked to reassign
//! (itself debounced). Only planned outages (cordon, drain and autoscaler taints, deletion) mark a
//! node's edges expected-down; a NotReady node still alarms, its Ready condition shown as evidence
//! ([`model::NodeInfo::expected_down`]). Node heartbeats therefore cost one rebuild per debounce window and no
//! assignment; a node joining reaches every agent in debounce + assign debounce (~300 ms).
//!
//! Failure handling: watch errors and `410 Gone` are retried by the watcher itself with the
//! default backoff (a re-list, never a crash). Until both kinds have listed once, or while an
//! error persists, `/readyz` carries a `kubernetes` reason naming the failing verb and resource
//! (a 403 says which RBAC permission is missing). The last complete model keeps serving through
//! errors; before the first one, pinglists fall back to the full mesh of connected agents, so an
//! aggregator whose API server is unreachable at start still measures what connects to it.

pub mod model;
pub mod token_review;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

use crate::Graph;
use crate::graph::AgentKey;
use crate::ingest::Ingest;
use crate::policy::{FullMesh, Peer, PinglistSource, PlannedTarget, Shared};
use crate::readiness::Readiness;
use model::ClusterModel;

/// The readiness component name discovery reports under.
pub const READINESS_COMPONENT: &str = "kubernetes";

/// What to watch.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Namespace of the agent pods; empty means every namespace.
    pub namespace: String,
    /// Label selector of the agent pods (both DaemonSets).
    pub agent_selector: String,
    /// Quiet time after an API event before the model is rebuilt.
    pub debounce: Duration,
    /// Which node address type is probed as a node's host address.
    pub host_address_type: model::HostAddressType,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            namespace: "echomesh".into(),
            agent_selector: "app.kubernetes.io/name=echomesh-agent".into(),
            debounce: Duration::from_millis(100),
            host_address_type: model::HostAddressType::default(),
        }
    }
}

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Neither in-cluster configuration nor a kubeconfig could be loaded.
    #[error("no Kubernetes configuration (in-cluster or kubeconfig): {0}")]
    Config(#[source] kube::Error),
}

/// Pinglists from the cluster model; the full mesh of connected agents until the first model.
#[derive(Debug, Default)]
pub struct ModelPinglist {
    model: RwLock<Option<Arc<ClusterModel>>>,
    warned: Mutex<BTreeSet<(AgentKey, String)>>,
}

impl ModelPinglist {
    /// The current model (`None` before the first complete list of nodes and pods).
    #[must_use]
    pub fn model(&self) -> Option<Arc<ClusterModel>> {
        self.model.read().clone()
    }

    /// Replaces the model.
    pub fn publish(&self, model: Arc<ClusterModel>) {
        *self.model.write() = Some(model);
    }
}

impl PinglistSource for ModelPinglist {
    fn targets(&self, agent: &AgentKey, peers: &[Peer]) -> Vec<PlannedTarget> {
        let Some(model) = self.model() else {
            return FullMesh.targets(agent, peers);
        };
        let announced = announced(agent, peers);
        self.warn_mismatch(&model, agent, announced);
        model.targets(agent, announced)
    }

    fn shared(&self, peers: &[Peer]) -> Option<Shared> {
        let Some(model) = self.model() else {
            return FullMesh.shared(peers);
        };
        Some(Shared {
            targets: model.all_targets().to_vec(),
            whole_node: true,
        })
    }

    fn families(&self, agent: &AgentKey, peers: &[Peer]) -> (bool, bool) {
        let Some(model) = self.model() else {
            return (true, true);
        };
        let announced = announced(agent, peers);
        self.warn_mismatch(&model, agent, announced);
        model.families(agent, announced)
    }
}

/// The addresses `agent`'s session announced (none when it is not among `peers`).
fn announced<'a>(agent: &AgentKey, peers: &'a [Peer]) -> &'a [IpAddr] {
    peers
        .iter()
        .find(|p| &p.key == agent)
        .map_or(&[], |p| p.addresses.as_slice())
}

impl ModelPinglist {
    /// Logs once per (agent, reason) that a session does not match the model.
    fn warn_mismatch(&self, model: &ClusterModel, agent: &AgentKey, announced: &[IpAddr]) {
        if let Some(why) = model.hello_mismatch(agent, announced) {
            // Once per (agent, reason): reassignments happen often, the log line need not.
            let mut warned = self.warned.lock();
            if warned.len() > 10_000 {
                warned.clear();
            }
            if warned.insert((agent.clone(), why.clone())) {
                tracing::warn!(agent = %agent, reason = %why, "agent session does not match the cluster model; assigning from the model");
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nodes,
    Pods,
}

/// What a watcher event means for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `Init` / `InitApply`: a (re-)list is under way; the store swaps at `InitDone`.
    Listing,
    /// `InitDone`: the store holds a complete list.
    Listed,
    /// `Apply` / `Delete` from a working watch.
    Changed,
}

impl Step {
    fn of<K>(e: &watcher::Event<K>) -> Self {
        match e {
            watcher::Event::Init | watcher::Event::InitApply(_) => Self::Listing,
            watcher::Event::InitDone => Self::Listed,
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => Self::Changed,
        }
    }
}

/// Per-kind watch health.
#[derive(Debug, Default)]
struct KindStatus {
    listed: bool,
    error: Option<String>,
    errors_in_a_row: u32,
}

/// Turns a watcher error into a sentence an operator can act on.
#[must_use]
pub fn describe_watch_error(resource: &str, e: &watcher::Error) -> String {
    let (verb, err) = match e {
        watcher::Error::InitialListFailed(e) => ("list", e),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => ("watch", e),
        watcher::Error::WatchError(status) => {
            return if status.code == 410 {
                format!("watch of {resource} expired (410 Gone); re-listing")
            } else {
                describe_status(
                    "watch",
                    resource,
                    status.code,
                    &status.reason,
                    &status.message,
                )
            };
        }
        watcher::Error::NoResourceVersion => {
            return format!("list of {resource} returned no resourceVersion; re-listing");
        }
    };
    match err {
        kube::Error::Api(status) => {
            describe_status(verb, resource, status.code, &status.reason, &status.message)
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            format!("API server unreachable ({verb} {resource}): {err}")
        }
        other => format!("cannot {verb} {resource}: {other}"),
    }
}

fn describe_status(verb: &str, resource: &str, code: u16, reason: &str, message: &str) -> String {
    match code {
        403 => format!(
            "forbidden: the aggregator's service account may not {verb} {resource} \
             (RBAC needs get, list, watch on {}): {message}",
            resource.split_whitespace().next().unwrap_or(resource)
        ),
        401 => format!("unauthorized to {verb} {resource} (token expired or invalid): {message}"),
        _ => format!("{verb} {resource} failed: HTTP {code} {reason}: {message}"),
    }
}

/// Objects per LIST page (`limit`): 5,000 Nodes are ten requests and 10,000 agent Pods twenty.
pub const LIST_PAGE_SIZE: u32 = 500;

/// How both watchers list and watch, spelled out rather than left to kube-runtime's defaults
/// (which today are the same) because each setting is what keeps a large cluster cheap:
///
/// - **Paged lists** of [`LIST_PAGE_SIZE`], client-go's page size: an unpaged list of 5,000 Nodes
///   is one response of tens of megabytes that the API server must build in memory at once (and
///   that times out on a busy control plane); pages of 500 bound every response while costing
///   only ten round trips.
/// - **Watch bookmarks**: the API server tells an idle watch the current resourceVersion now and
///   then, so when the watch ends (it does every few minutes) the watcher resumes from a recent
///   version instead of one etcd has compacted away, which would be a `410 Gone` and a full
///   re-list of every page.
/// - **List then watch, not streaming lists**: `sendInitialEvents` needs the API server's
///   WatchList feature, which clusters do not all enable, and kube-runtime does not fall back
///   when it is missing.
fn watch_config() -> watcher::Config {
    let mut c = watcher::Config::default().page_size(LIST_PAGE_SIZE);
    c.bookmarks = true;
    c.initial_list_strategy = watcher::InitialListStrategy::ListWatch;
    c
}

/// The discovery loop's handles.
#[derive(Debug, Clone)]
pub struct Discovery {
    cfg: DiscoveryConfig,
    pinglist: Arc<ModelPinglist>,
    ingest: Ingest,
    graph: Arc<Graph>,
    readiness: Arc<Readiness>,
}

impl Discovery {
    /// Discovery publishing into `pinglist`, telling `ingest` to reassign and marking `graph`'s
    /// expected-down nodes; readiness reasons go to `readiness`.
    #[must_use]
    pub fn new(
        cfg: DiscoveryConfig,
        pinglist: Arc<ModelPinglist>,
        ingest: Ingest,
        graph: Arc<Graph>,
        readiness: Arc<Readiness>,
    ) -> Self {
        Self {
            cfg,
            pinglist,
            ingest,
            graph,
            readiness,
        }
    }

    /// Loads in-cluster config or a kubeconfig (retrying until `shutdown`), then runs.
    pub async fn run_inferred(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut wait = Duration::from_secs(1);
        let client = loop {
            match Client::try_default().await {
                Ok(c) => break c,
                Err(e) => {
                    let e = DiscoveryError::Config(e);
                    tracing::error!(error = %e, retry_in = ?wait, "Kubernetes discovery cannot start; serving connected agents only");
                    self.readiness
                        .set_reason(READINESS_COMPONENT, format!("{e}; retrying"));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return,
            }
            wait = (wait * 2).min(Duration::from_secs(60));
        };
        self.run(client, shutdown).await;
    }

    /// Watches Nodes and agent Pods through `client` until `shutdown` resolves.
    pub async fn run(self, client: Client, shutdown: impl std::future::Future<Output = ()>) {
        let pods_resource = if self.cfg.namespace.is_empty() {
            format!("pods ({}) in all namespaces", self.cfg.agent_selector)
        } else {
            format!(
                "pods ({}) in namespace {}",
                self.cfg.agent_selector, self.cfg.namespace
            )
        };
        self.readiness.set_reason(
            READINESS_COMPONENT,
            "waiting for the first list of nodes and agent pods",
        );
        let nodes_api: Api<Node> = Api::all(client.clone());
        let pods_api: Api<Pod> = if self.cfg.namespace.is_empty() {
            Api::all(client)
        } else {
            Api::namespaced(client, &self.cfg.namespace)
        };
        let (node_store, node_writer) = reflector::store::<Node>();
        let (pod_store, pod_writer) = reflector::store::<Pod>();
        let nodes = watcher(nodes_api, watch_config())
            .default_backoff()
            .modify(|n: &mut Node| n.managed_fields_mut().clear())
            .reflect(node_writer)
            .map(|e| (Kind::Nodes, e.map(|e| Step::of(&e))))
            .boxed();
        let pods = watcher(pods_api, watch_config().labels(&self.cfg.agent_selector))
            .default_backoff()
            .modify(|p: &mut Pod| p.managed_fields_mut().clear())
            .reflect(pod_writer)
            .map(|e| (Kind::Pods, e.map(|e| Step::of(&e))))
            .boxed();
        let mut events = futures::stream::select(nodes, pods);

        let mut status = [KindStatus::default(), KindStatus::default()];
        let mut rebuild_at: Option<Instant> = None;
        let mut last_warnings: BTreeSet<String> = BTreeSet::new();
        tokio::pin!(shutdown);
        loop {
            let deadline = rebuild_at;
            let rebuild_due = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = rebuild_due => {
                    rebuild_at = None;
                    if status.iter().all(|s| s.listed) {
                        self.rebuild(&node_store, &pod_store, &mut last_warnings);
                    }
                }
                ev = events.next() => {
                    let Some((kind, ev)) = ev else {
                        // The watchers never end on their own; if they did, keep serving the
                        // last model (returning early would look like a server failure).
                        tracing::error!("Kubernetes watch streams ended; keeping the last cluster model");
                        self.readiness.set_reason(READINESS_COMPONENT, "watch streams ended");
                        shutdown.await;
                        return;
                    };
                    let (idx, resource) = match kind {
                        Kind::Nodes => (0, "nodes (cluster scope)"),
                        Kind::Pods => (1, pods_resource.as_str()),
                    };
                    let st = &mut status[idx];
                    match ev {
                        // A (re-)list starting or in progress proves nothing yet: the request
                        // that follows may fail again.
                        Ok(Step::Listing) => {}
                        Ok(step) => {
                            if step == Step::Listed {
                                st.listed = true;
                            }
                            if st.error.take().is_some() {
                                tracing::info!(resource, "Kubernetes watch recovered");
                            }
                            st.errors_in_a_row = 0;
                            rebuild_at.get_or_insert_with(|| Instant::now() + self.cfg.debounce);
                        }
                        // Routine: watches expire (etcd compaction) and the watcher re-lists.
                        Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                            tracing::info!(resource, "watch expired (410 Gone); re-listing");
                        }
                        Err(e) => {
                            let msg = describe_watch_error(resource, &e);
                            st.errors_in_a_row = st.errors_in_a_row.saturating_add(1);
                            // Log every change of cause, and every 10th repeat (the backoff caps
                            // retries at one per 30 s, so this stays quiet but visible).
                            if st.error.as_deref() != Some(msg.as_str()) || st.errors_in_a_row % 10 == 0 {
                                tracing::warn!(resource, retries = st.errors_in_a_row, error = %msg, "Kubernetes watch failed; retrying with backoff");
                            }
                            st.error = Some(msg);
                        }
                    }
                    self.update_readiness(&status);
                }
            }
        }
    }

    fn update_readiness(&self, status: &[KindStatus; 2]) {
        let errors: Vec<&str> = status.iter().filter_map(|s| s.error.as_deref()).collect();
        if !errors.is_empty() {
            let serving = if self.pinglist.model().is_some() {
                "serving the last known cluster model"
            } else {
                "serving connected agents only (full mesh)"
            };
            self.readiness.set_reason(
                READINESS_COMPONENT,
                format!("{}; {serving}", errors.join("; ")),
            );
        } else if status.iter().all(|s| s.listed) {
            self.readiness.clear_reason(READINESS_COMPONENT);
        }
    }

    fn rebuild(
        &self,
        nodes: &Store<Node>,
        pods: &Store<Pod>,
        last_warnings: &mut BTreeSet<String>,
    ) {
        let nodes = nodes.state();
        let pods = pods.state();
        let (model, warnings) = ClusterModel::build_with(
            self.cfg.host_address_type,
            nodes.iter().map(|n| &**n),
            pods.iter().map(|p| &**p),
        );
        let warnings: BTreeSet<String> = warnings.iter().map(ToString::to_string).collect();
        for w in warnings.difference(last_warnings) {
            tracing::warn!(warning = %w, "cluster model");
        }
        *last_warnings = warnings;
        let old = self.pinglist.model();
        if old.as_deref() == Some(&model) {
            return;
        }
        if let Some(old) = &old {
            log_changes(old, &model);
        } else {
            tracing::info!(
                nodes = model.nodes.len(),
                agents = model.agents.len(),
                "cluster model ready"
            );
        }
        self.graph
            .set_expected_down_nodes(model.expected_down_nodes());
        self.graph.set_not_ready_nodes(model.not_ready_nodes());
        self.graph.set_node_zones(model.node_zones());
        self.graph.set_discovered_endpoints(model.endpoints());
        self.pinglist.publish(Arc::new(model));
        self.ingest.membership_changed();
    }
}

fn log_changes(old: &ClusterModel, new: &ClusterModel) {
    for n in new.nodes.keys().filter(|n| !old.nodes.contains_key(*n)) {
        tracing::info!(node = %n, "node joined");
    }
    for n in old.nodes.keys().filter(|n| !new.nodes.contains_key(*n)) {
        tracing::info!(node = %n, "node left");
    }
    for (name, n) in &new.nodes {
        let Some(was) = old.nodes.get(name) else {
            continue;
        };
        if was.expected_down() != n.expected_down() || was.ready.is_ready() != n.ready.is_ready() {
            let ready = n.ready.evidence().unwrap_or_else(|| "True".into());
            tracing::info!(node = %name, %ready, draining = n.draining, deleting = n.deleting,
                expected_down = n.expected_down(), "node availability changed");
        }
    }
    for (k, p) in &new.agents {
        if old.agents.get(k).is_some_and(|o| o.ips != p.ips) {
            tracing::info!(agent = %k, pod = %p.name, ips = ?p.ips, "agent pod addresses changed");
        }
    }
    for k in old.agents.keys().filter(|k| !new.agents.contains_key(*k)) {
        tracing::info!(agent = %k, "agent pod gone; its edges go UNKNOWN and are pruned after the agent TTL");
    }
}

#[cfg(test)]
mod tests;
