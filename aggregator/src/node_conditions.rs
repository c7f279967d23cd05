//! Node conditions (`--node-condition-after`, with `--kubernetes`; off by default): a node the
//! diagnosis blames (the node, its pod network or its host network) continuously for longer than
//! the threshold gets the Node status condition `EchomeshNetworkProblem=True` and one Warning
//! Event; when it is no longer blamed the condition goes `False` (reason `NetworkHealthy`) with a
//! Normal Event.
//!
//! Why in the aggregator, beside discovery: the diagnosis needs the whole graph, which only the
//! aggregator has, and discovery already holds the Kubernetes client and the cluster model (only
//! nodes of the model are written). It is a layer of its own above `diagnose` (which sits above
//! `discovery`), so nothing below it depends on it and `api`/`http` do not either. Why off by
//! default: it is the only part of echomesh that changes cluster objects, and it needs RBAC
//! (`patch` on `nodes/status`, `create` on `events`) that the base manifests do not grant.
//!
//! How it writes: every [`NodeConditionConfig::every`] the diagnosis runs (off the async
//! runtime: it walks the graph); [`tracker`] decides which nodes changed, and at most
//! [`NodeConditionConfig::max_writes_per_cycle`] nodes are written per cycle (the rest wait for
//! the next), each as a strategic merge patch of `nodes/<name>/status` with field manager
//! `echomesh` carrying only our condition (the kubelet's and other owners' conditions are never
//! touched) and one Event ([`body`]). Only nodes of the cluster model with valid Node names are
//! written: names come from agents' Hellos. At start the Nodes are read once, so a condition left
//! True by a previous aggregator is cleared when the node is healthy.
//!
//! Failures: a failed write is not confirmed and is retried next cycle (still within the per-cycle
//! bound). Every write is counted in `echomesh_node_condition_writes_total{object,result}`; a 403
//! (the RBAC is missing) is logged once as an error naming the permission, later ones at debug, and
//! nothing else in the aggregator is affected.

pub mod body;
pub mod tracker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Event, Node};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use crate::diagnose::Diagnosis;
use body::{Blame, CONDITION_TYPE};
use tracker::{Change, Tracker};

/// The field manager of the patches.
pub const FIELD_MANAGER: &str = "echomesh";
/// Shortest accepted `--node-condition-after` (one diagnosis cycle).
pub const MIN_AFTER: Duration = Duration::from_secs(10);
/// Longest accepted `--node-condition-after`.
pub const MAX_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Parses `--node-condition-after`: a duration within [`MIN_AFTER`]..=[`MAX_AFTER`].
///
/// # Errors
/// What is wrong with `s`.
pub fn parse_after(s: &str) -> Result<Duration, String> {
    let d = echomesh_runtime::parse_duration(s)?;
    if d < MIN_AFTER || d > MAX_AFTER {
        return Err(format!(
            "must be within 10s..=24h (a node blamed for that long gets the condition), got {s:?}"
        ));
    }
    Ok(d)
}

/// How the writer behaves.
#[derive(Debug, Clone)]
pub struct NodeConditionConfig {
    /// Continuous blame before the condition goes True.
    pub after: Duration,
    /// Time between diagnoses.
    pub every: Duration,
    /// Most nodes written per cycle.
    pub max_writes_per_cycle: usize,
}

impl NodeConditionConfig {
    /// Raises after `after`, diagnosing every 10 s (or every `after` when shorter, which only
    /// tests set: the flag's minimum is 10 s), writing at most 10 nodes per cycle.
    #[must_use]
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            every: after.clamp(Duration::from_millis(100), Duration::from_secs(10)),
            max_writes_per_cycle: 10,
        }
    }
}

/// Which object a write was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// The Node status condition.
    Condition = 0,
    /// The Event.
    Event = 1,
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted.
    Ok = 0,
    /// 403: the RBAC for the write is missing.
    Forbidden = 1,
    /// Any other failure (unreachable, other status).
    Error = 2,
}

/// Write counters, exported as `echomesh_node_condition_writes_total`; clones share them.
#[derive(Debug, Clone, Default)]
pub struct WriteCounters {
    counts: Arc<[[AtomicU64; 3]; 2]>,
}

impl WriteCounters {
    /// Counts one write.
    pub fn count(&self, object: Object, outcome: Outcome) {
        self.counts[object as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Writes so far of `object` that ended in `outcome`.
    #[must_use]
    pub fn get(&self, object: Object, outcome: Outcome) -> u64 {
        self.counts[object as usize][outcome as usize].load(Ordering::Relaxed)
    }
}

impl Collector for WriteCounters {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut m = enc.encode_descriptor(
            "echomesh_node_condition_writes",
            "Writes of the EchomeshNetworkProblem Node condition and its Events, by object \
             (condition, event) and result (ok, forbidden: RBAC missing, error).",
            None,
            MetricType::Counter,
        )?;
        for (object, oname) in [(Object::Condition, "condition"), (Object::Event, "event")] {
            for (outcome, rname) in [
                (Outcome::Ok, "ok"),
                (Outcome::Forbidden, "forbidden"),
                (Outcome::Error, "error"),
            ] {
                ConstCounter::new(self.get(object, outcome))
                    .encode(m.encode_family(&[("object", oname), ("result", rname)])?)?;
            }
        }
        Ok(())
    }
}

/// Runs the diagnosis (called off the async runtime).
pub type DiagnosisSource = Arc<dyn Fn() -> (Diagnosis, u64) + Send + Sync>;
/// Whether a node exists in the cluster model.
pub type KnownNode = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The writer.
pub struct NodeConditions {
    cfg: NodeConditionConfig,
    client: Option<kube::Client>,
    diagnose: DiagnosisSource,
    known: KnownNode,
    counters: WriteCounters,
    forbidden_logged: AtomicBool,
}

impl std::fmt::Debug for NodeConditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConditions")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl NodeConditions {
    /// Writes through `client` (or, when `None`, the in-cluster configuration or kubeconfig,
    /// loaded at the first cycle), blaming from `diagnose`, writing only nodes `known` accepts,
    /// counting into `counters`.
    #[must_use]
    pub fn new(
        cfg: NodeConditionConfig,
        client: Option<kube::Client>,
        diagnose: DiagnosisSource,
        known: KnownNode,
        counters: WriteCounters,
    ) -> Self {
        Self {
            cfg,
            client,
            diagnose,
            known,
            counters,
            forbidden_logged: AtomicBool::new(false),
        }
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tracker = Tracker::new(self.cfg.after);
        let mut seeded = false;
        let mut tick = tokio::time::interval(self.cfg.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(after = ?self.cfg.after, "node conditions: blamed nodes get the {CONDITION_TYPE} condition");
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            if self.client.is_none() {
                match kube::Client::try_default().await {
                    Ok(c) => self.client = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "node conditions: no Kubernetes configuration; retrying next cycle");
                        continue;
                    }
                }
            }
            let Some(client) = self.client.clone() else {
                continue;
            };
            if !seeded {
                seeded = self.seed(&client, &mut tracker).await;
            }
            let source = self.diagnose.clone();
            let Ok((d, now_ms)) = crate::background::run(move || source()).await else {
                continue;
            };
            let blamed = self.blamed(&d, now_ms);
            let now = tokio::time::Instant::now();
            let changes = tracker.observe(now, &blamed);
            for change in changes.iter().take(self.cfg.max_writes_per_cycle) {
                if self.write(&client, change).await {
                    tracker.written(change);
                }
            }
            if changes.len() > self.cfg.max_writes_per_cycle {
                tracing::info!(
                    due = changes.len(),
                    written = self.cfg.max_writes_per_cycle,
                    "node conditions: more changes than one cycle writes; the rest follow"
                );
            }
        }
    }

    /// Blamed nodes that may be written: the first culprit per node wins (most explaining).
    fn blamed(&self, d: &Diagnosis, now_ms: u64) -> BTreeMap<String, Blame> {
        let mut out = BTreeMap::new();
        for c in &d.culprits {
            let Some(blame) = Blame::of(c, now_ms) else {
                continue;
            };
            let node = &*c.subject;
            if out.contains_key(node) || !body::valid_node_name(node) || !(self.known)(node) {
                continue;
            }
            out.insert(node.to_string(), blame);
        }
        out
    }

    /// Finds conditions left True (by a previous aggregator); false when the list failed.
    async fn seed(&self, client: &kube::Client, tracker: &mut Tracker) -> bool {
        let nodes: Api<Node> = Api::all(client.clone());
        match nodes.list(&ListParams::default()).await {
            Ok(list) => {
                for n in list.items {
                    let raised = n
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c.type_ == CONDITION_TYPE && c.status == "True")
                        });
                    if let (true, Some(name)) = (raised, n.metadata.name.as_deref()) {
                        tracker.assume_raised(name, "Unknown");
                    }
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "node conditions: cannot list nodes to find conditions left True; retrying next cycle");
                false
            }
        }
    }

    /// Performs one change: the patch, then the Event. True when the patch was accepted.
    async fn write(&self, client: &kube::Client, change: &Change) -> bool {
        let node = change.node();
        let blame = match change {
            Change::Raise(_, b) => Some(b),
            Change::Clear(_) => None,
        };
        // Whole seconds, as Kubernetes writes its own times.
        let now = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let nodes: Api<Node> = Api::all(client.clone());
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let patch = body::condition_patch(blame, &now);
        let r = nodes
            .patch_status(node, &pp, &Patch::Strategic(patch))
            .await;
        if !self.outcome(Object::Condition, node, "patch nodes/status", r.err()) {
            return false;
        }
        match change {
            Change::Raise(_, b) => {
                tracing::warn!(node, reason = b.reason, message = %b.message, "node conditions: {CONDITION_TYPE}=True");
            }
            Change::Clear(_) => {
                tracing::info!(
                    node,
                    "node conditions: {CONDITION_TYPE}=False (NetworkHealthy)"
                );
            }
        }
        let ev = body::event(node, blame, &now);
        let r = match serde_json::from_value::<Event>(ev) {
            Ok(ev) => Api::<Event>::namespaced(client.clone(), "default")
                .create(&PostParams::default(), &ev)
                .await
                .err(),
            Err(e) => Some(kube::Error::SerdeError(e)),
        };
        self.outcome(Object::Event, node, "create events", r);
        true
    }

    /// Counts and logs a write's result; true when it succeeded.
    fn outcome(&self, object: Object, node: &str, what: &str, err: Option<kube::Error>) -> bool {
        let Some(e) = err else {
            self.counters.count(object, Outcome::Ok);
            return true;
        };
        if matches!(&e, kube::Error::Api(s) if s.code == 403) {
            self.counters.count(object, Outcome::Forbidden);
            if !self.forbidden_logged.swap(true, Ordering::Relaxed) {
                tracing::error!(node, error = %e, "node conditions: forbidden: the aggregator's service account may not {what} (RBAC: add the node-conditions component, deploy/components/node-conditions); counted in echomesh_node_condition_writes_total{{result=\"forbidden\"}}, logged once");
            } else {
                tracing::debug!(node, error = %e, "node conditions: forbidden");
            }
        } else {
            self.counters.count(object, Outcome::Error);
            tracing::warn!(node, error = %e, "node conditions: {what} failed; retrying next cycle");
        }
        false
    }
}

/// Wall-clock milliseconds, for the evidence's ages.
#[must_use]
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
