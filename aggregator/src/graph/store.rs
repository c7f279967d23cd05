//! The edge store: every directed edge of the cluster, one fixed-size record each.
//!
//! Layout, and why: reports arrive per agent, so edges live in per-agent *slabs* — a `Vec` of
//! [`EdgeRecord`] indexed by the target's slot in that agent's assignment. Merging a report is then
//! a bounds check, an id check and a few additions per target, under one uncontended lock per
//! agent (only that agent's session writes its slab; readers take it briefly). A keyed concurrent
//! map per edge was measured at 10x the merge cost and 3x the memory, so `DashMap` is used only for
//! what is truly keyed and concurrent: the agent index and the endpoint registry. A report's merge
//! hands the lock to a waiting reader every `YIELD_EVERY` (64) entries (parking_lot's fair `bump`,
//! an atomic load when nobody waits), so a `GetEdge` waits for a few microseconds of merging, not
//! for a whole report's; such a reader may see a report half merged, every record whole.
//!
//! The store emits a [`GraphEvent`] for every state change it makes, so readers learn of changes
//! without polling and without the store knowing who listens.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use echomesh_proto::v1::{self, Network};
use parking_lot::Mutex;
use tokio::time::Instant;

use super::events::{EventHub, GraphEvent, unix_ms};
use super::identity::{AgentKey, Endpoint, IdMap, endpoint_id, first_per_family};
use super::machine::{Thresholds, Transition};
use super::record::EdgeRecord;
use super::sketch::{TICKS_PER_SEC, Tick};

/// Entries merged between two chances for a waiting reader to take the slab's lock.
pub(super) const YIELD_EVERY: usize = 64;

/// Why a report was refused as a whole.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    /// Reports must carry sequence numbers from 1.
    #[error("report sequence number 0 is invalid (sequences start at 1)")]
    ZeroSequence,
}

/// What happened to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Merged into the graph.
    Merged {
        /// Entries naming a target that is not in the assignment (counted, ignored).
        unknown_targets: u32,
        /// Entries measured under an older assignment for targets the current one no longer
        /// holds (counted, ignored: expected after every list change).
        retired: u32,
        /// Entries with a malformed histogram (counted, ignored).
        invalid: u32,
    },
    /// Already merged before (a replay): acknowledged again, not counted twice.
    Duplicate,
}

/// An agent's edges and report bookkeeping.
#[derive(Debug, Default)]
pub struct Slab {
    /// Generation of the assignment the records follow.
    pub generation: u64,
    /// One record per assigned target, in assignment order.
    pub records: Vec<EdgeRecord>,
    boot_id: u64,
    last_seq: u64,
    /// Last report (or connect) time; staleness is measured from here.
    pub last_report: Tick,
    report_interval: Duration,
    stale: bool,
    merged: u64,
}

impl Slab {
    /// Highest report sequence number merged for the current boot id.
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Reports merged into this slab (duplicates excluded).
    #[must_use]
    pub fn merged(&self) -> u64 {
        self.merged
    }

    /// The sweep found no report for longer than the stale limit: the edges are UNKNOWN.
    #[must_use]
    pub fn is_stale(&self) -> bool {
        self.stale
    }
}

/// What the agent said about itself.
#[derive(Debug, Clone, Default)]
pub struct AgentInfo {
    /// Pod name.
    pub pod: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Agent version.
    pub version: String,
    /// Boot id of the current process.
    pub boot_id: u64,
    /// A session is open.
    pub connected: bool,
    /// When the session closed (for pruning).
    pub disconnected_at: Option<Tick>,
}

/// One agent: identity, self-description, edges.
#[derive(Debug)]
pub struct AgentEntry {
    /// Node and network.
    pub key: AgentKey,
    /// Self-description.
    pub info: Mutex<AgentInfo>,
    /// The edges (the hot path).
    pub slab: Mutex<Slab>,
}

/// Knobs of the graph.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// State thresholds and hysteresis.
    pub thresholds: Thresholds,
    /// An agent's edges go UNKNOWN after this many report intervals without a report.
    pub stale_after_intervals: u32,
    /// A disconnected agent and its edges are forgotten after this long.
    pub agent_ttl: Duration,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            stale_after_intervals: 3,
            agent_ttl: Duration::from_secs(600),
        }
    }
}

/// Counters over the whole graph.
#[derive(Debug, Default)]
pub struct GraphCounters {
    /// Reports merged.
    pub reports_merged: AtomicU64,
    /// Reports recognised as replays.
    pub reports_duplicate: AtomicU64,
    /// Edge updates merged (one per target entry).
    pub edge_updates: AtomicU64,
    /// Entries naming targets not in the assignment.
    pub unknown_targets: AtomicU64,
    /// Entries and alerts of an older assignment naming targets the current one no longer
    /// holds: what was in flight when a list changed (the budget pinglist's rotation changes
    /// lists every epoch), not an error.
    pub retired_entries: AtomicU64,
    /// Entries with malformed histograms.
    pub invalid_entries: AtomicU64,
}

/// The live cluster graph.
#[derive(Debug)]
pub struct Graph {
    base: Instant,
    /// Ticks added to the clock by [`Graph::advance_clock`] (tests and simulations only).
    skew: AtomicU32,
    cfg: GraphConfig,
    agents: DashMap<AgentKey, Arc<AgentEntry>>,
    endpoints: DashMap<u64, Endpoint>,
    /// Nodes whose edges are expected to fail (cordoned, draining, being deleted), from
    /// Kubernetes discovery.
    expected_down: parking_lot::RwLock<BTreeSet<Arc<str>>>,
    /// Nodes whose Ready condition is not `True`, with the condition as one line (evidence shown
    /// beside their edges, not a reason to silence them), from Kubernetes discovery.
    not_ready: parking_lot::RwLock<BTreeMap<Arc<str>, Arc<str>>>,
    /// Endpoints known from Kubernetes discovery (targets whose agent may not be connected);
    /// `endpoints` (from Hellos) wins where both know an id.
    discovered: parking_lot::RwLock<HashMap<u64, Endpoint>>,
    /// Node to zone (`topology.kubernetes.io/zone`), from Kubernetes discovery; read by the
    /// diagnosis to name a zone cut from the others.
    zones: parking_lot::RwLock<BTreeMap<Arc<str>, Arc<str>>>,
    /// Global counters.
    pub counters: GraphCounters,
    /// State-change events.
    pub events: EventHub,
    /// ICMP errors, refused sends and MTU black holes, beside the records.
    pub rare: super::rare::RareFacts,
}

impl Graph {
    /// An empty graph whose clock starts now.
    #[must_use]
    pub fn new(cfg: GraphConfig, events: EventHub) -> Self {
        Self {
            base: Instant::now(),
            skew: AtomicU32::new(0),
            cfg,
            agents: DashMap::new(),
            endpoints: DashMap::new(),
            expected_down: parking_lot::RwLock::new(BTreeSet::new()),
            not_ready: parking_lot::RwLock::new(BTreeMap::new()),
            discovered: parking_lot::RwLock::new(HashMap::new()),
            zones: parking_lot::RwLock::new(BTreeMap::new()),
            counters: GraphCounters::default(),
            events,
            rare: super::rare::RareFacts::default(),
        }
    }

    /// Graph time now.
    #[must_use]
    pub fn now(&self) -> Tick {
        let ms = self.base.elapsed().as_millis();
        u32::try_from(ms / u128::from(1000 / TICKS_PER_SEC))
            .unwrap_or(u32::MAX)
            .saturating_add(self.skew.load(Ordering::Relaxed))
    }

    /// Moves graph time forward by `d` (whole ticks of 10 ms): lets an end-to-end test through
    /// real gRPC play minutes of reports in milliseconds. The server never calls it.
    pub fn advance_clock(&self, d: Duration) {
        let ticks = d.as_millis() / u128::from(1000 / TICKS_PER_SEC);
        self.skew
            .fetch_add(u32::try_from(ticks).unwrap_or(u32::MAX), Ordering::Relaxed);
    }

    /// Milliseconds between two ticks (saturating at 0).
    #[must_use]
    pub fn age_ms(now: Tick, then: Tick) -> u64 {
        u64::from(now.saturating_sub(then)) * u64::from(1000 / TICKS_PER_SEC)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &GraphConfig {
        &self.cfg
    }

    /// Replaces the set of nodes whose edges are expected to fail (not alarmed).
    pub fn set_expected_down_nodes(&self, nodes: BTreeSet<Arc<str>>) {
        *self.expected_down.write() = nodes;
    }

    /// Replaces the endpoints known from Kubernetes discovery, so edges towards targets whose
    /// agent never connected still name their node and address.
    pub fn set_discovered_endpoints(&self, endpoints: HashMap<u64, Endpoint>) {
        *self.discovered.write() = endpoints;
    }

    /// Edges towards `node` are expected to fail (it is cordoned, draining or being deleted).
    #[must_use]
    pub fn is_expected_down(&self, node: &str) -> bool {
        self.expected_down.read().contains(node)
    }

    /// The nodes whose edges are expected to fail, sorted.
    #[must_use]
    pub fn expected_down_nodes(&self) -> BTreeSet<Arc<str>> {
        self.expected_down.read().clone()
    }

    /// Replaces the nodes whose Ready condition is not `True`, each with its condition in one
    /// line (e.g. `Unknown since 2026-01-02T03:04:05Z (NodeStatusUnknown)`).
    pub fn set_not_ready_nodes(&self, nodes: BTreeMap<Arc<str>, Arc<str>>) {
        *self.not_ready.write() = nodes;
    }

    /// Replaces the node-to-zone map (nodes without a zone label are left out).
    pub fn set_node_zones(&self, zones: BTreeMap<Arc<str>, Arc<str>>) {
        *self.zones.write() = zones;
    }

    /// Sets one node's zone (from an agent's Hello, when no Kubernetes discovery owns the map).
    pub fn set_node_zone(&self, node: &Arc<str>, zone: &str) {
        let mut zones = self.zones.write();
        if zones.get(node).is_none_or(|z| z.as_ref() != zone) {
            zones.insert(node.clone(), zone.into());
        }
    }

    /// The node-to-zone map, where known.
    #[must_use]
    pub fn node_zones(&self) -> BTreeMap<Arc<str>, Arc<str>> {
        self.zones.read().clone()
    }

    /// `node`'s Ready condition when it is not `True` (`None` when Ready or not discovered).
    #[must_use]
    pub fn not_ready(&self, node: &str) -> Option<Arc<str>> {
        self.not_ready.read().get(node).cloned()
    }

    /// Registers (or refreshes) an agent from its Hello, marking it connected. Its endpoints are
    /// the first address per family ([`first_per_family`]); an endpoint whose address changed
    /// keeps its id (and so every edge towards it keeps its history) and takes the new address.
    pub fn upsert_agent(&self, key: AgentKey, info: AgentInfo) -> Arc<AgentEntry> {
        let now = self.now();
        let targets = first_per_family(&info.addresses);
        let current: Vec<u64> = targets
            .iter()
            .map(|&a| endpoint_id(&key.node, key.network, a))
            .collect();
        for (&id, &addr) in current.iter().zip(&targets) {
            self.endpoints.insert(
                id,
                Endpoint {
                    node: key.node.clone(),
                    network: key.network,
                    addr,
                },
            );
        }
        let entry = self
            .agents
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(AgentEntry {
                    key: key.clone(),
                    info: Mutex::new(AgentInfo::default()),
                    slab: Mutex::new(Slab::default()),
                })
            })
            .clone();
        {
            let mut slab = entry.slab.lock();
            if slab.boot_id != info.boot_id {
                // A new process: its sequence numbers start again.
                slab.boot_id = info.boot_id;
                slab.last_seq = 0;
            }
            slab.last_report = now;
            slab.stale = false;
        }
        let old_addrs = {
            let mut i = entry.info.lock();
            let old = std::mem::take(&mut i.addresses);
            *i = AgentInfo {
                connected: true,
                disconnected_at: None,
                ..info
            };
            old
        };
        // A family the agent no longer announces is no longer an endpoint; a changed address of
        // a family it still announces was replaced above under the same id.
        for a in old_addrs {
            let id = endpoint_id(&key.node, key.network, a);
            if !current.contains(&id) {
                self.endpoints.remove(&id);
            }
        }
        entry
    }

    /// Marks an agent's session closed; its edges go stale on schedule and are pruned after the TTL.
    pub fn disconnect_agent(&self, key: &AgentKey) {
        if let Some(a) = self.agents.get(key).map(|a| a.clone()) {
            let mut i = a.info.lock();
            i.connected = false;
            i.disconnected_at = Some(self.now());
        }
    }

    /// The agent entry for `key`.
    #[must_use]
    pub fn agent(&self, key: &AgentKey) -> Option<Arc<AgentEntry>> {
        self.agents.get(key).map(|a| a.clone())
    }

    /// All agents, sorted by key (a snapshot of the index; no guard is held afterwards).
    #[must_use]
    pub fn agents(&self) -> Vec<Arc<AgentEntry>> {
        let mut v: Vec<_> = self.agents.iter().map(|e| e.value().clone()).collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// The endpoint behind a target id.
    #[must_use]
    pub fn endpoint(&self, id: u64) -> Option<Endpoint> {
        self.endpoints
            .get(&id)
            .map(|e| e.clone())
            .or_else(|| self.discovered.read().get(&id).cloned())
    }

    /// Ids and networks of the endpoints with address `ip` (announced by agents, or discovered).
    #[must_use]
    pub fn endpoints_with_addr(&self, ip: IpAddr) -> Vec<(u64, Network)> {
        let mut v: Vec<(u64, Network)> = self
            .endpoints
            .iter()
            .filter(|e| e.value().addr == ip)
            .map(|e| (*e.key(), e.value().network))
            .collect();
        for (id, e) in self.discovered.read().iter() {
            if e.addr == ip && !v.iter().any(|(x, _)| x == id) {
                v.push((*id, e.network));
            }
        }
        v
    }

    /// Every known endpoint with its id (announced by agents, or discovered).
    #[must_use]
    pub fn endpoints(&self) -> Vec<(u64, Endpoint)> {
        let mut all: HashMap<u64, Endpoint> = self.discovered.read().clone();
        for e in &self.endpoints {
            all.insert(*e.key(), e.value().clone());
        }
        all.into_iter().collect()
    }

    /// Points an agent's slab at a new assignment, keeping the records of targets still present.
    pub fn apply_assignment(
        &self,
        agent: &AgentEntry,
        generation: u64,
        targets: &[u64],
        report_interval: Duration,
    ) {
        let now = self.now();
        let mut slab = agent.slab.lock();
        let old: IdMap<usize> = slab
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.target_id, i))
            .collect();
        let mut records = Vec::with_capacity(targets.len());
        for &id in targets {
            records.push(match old.get(&id) {
                Some(&i) => slab.records[i],
                None => EdgeRecord::new(id, now),
            });
        }
        slab.records = records;
        self.rare.retain_targets(&agent.key, targets);
        slab.generation = generation;
        slab.report_interval = report_interval;
    }

    /// The target ids of an agent's current assignment, in slot order.
    #[must_use]
    pub fn assigned_ids(agent: &AgentEntry) -> Vec<u64> {
        agent
            .slab
            .lock()
            .records
            .iter()
            .map(|r| r.target_id)
            .collect()
    }

    /// Merges one report. Idempotent: a sequence number at or below the last merged one is a
    /// duplicate and changes nothing.
    pub fn merge_report(
        &self,
        agent: &AgentEntry,
        report: &v1::Report,
    ) -> Result<MergeOutcome, ReportError> {
        if report.seq == 0 {
            return Err(ReportError::ZeroSequence);
        }
        let now = self.now();
        let t = &self.cfg.thresholds;
        let mut transitions: Vec<(u64, Transition)> = Vec::new();
        let (unknown, retired, invalid) = {
            let mut guard = agent.slab.lock();
            let slab = &mut *guard;
            if report.seq <= slab.last_seq {
                self.counters
                    .reports_duplicate
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(MergeOutcome::Duplicate);
            }
            slab.last_seq = report.seq;
            slab.merged += 1;
            slab.last_report = now;
            slab.stale = false;
            let current_gen = report.generation == slab.generation;
            // Reports measured under an older assignment are mapped by id (the slow path).
            let by_id: Option<IdMap<usize>> = (!current_gen).then(|| {
                slab.records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.target_id, i))
                    .collect()
            });
            let (mut unknown, mut retired, mut invalid) = (0u32, 0u32, 0u32);
            for (k, ts) in report.targets.iter().enumerate() {
                if k % YIELD_EVERY == YIELD_EVERY - 1 {
                    // A waiting reader goes first; the records may have been reassigned meanwhile,
                    // which the id check below notices.
                    parking_lot::MutexGuard::bump(&mut guard);
                }
                let idx = match &by_id {
                    None => ts.slot as usize,
                    Some(m) => m.get(&ts.target_id).copied().unwrap_or(usize::MAX),
                };
                let Some(rec) = guard
                    .records
                    .get_mut(idx)
                    .filter(|r| r.target_id == ts.target_id)
                else {
                    if by_id.is_some() {
                        retired += 1;
                    } else {
                        unknown += 1;
                    }
                    continue;
                };
                let merged = rec.merge(ts, t, now);
                if merged.is_ok() && super::rare::worth_noting(ts) {
                    self.rare.note(&agent.key, ts);
                }
                match merged {
                    Ok(Some(tr)) => transitions.push((ts.target_id, tr)),
                    Ok(None) => {}
                    Err(_) => invalid += 1,
                }
            }
            (unknown, retired, invalid)
        };
        self.counters.reports_merged.fetch_add(1, Ordering::Relaxed);
        self.counters
            .edge_updates
            .fetch_add(report.targets.len() as u64, Ordering::Relaxed);
        if unknown > 0 {
            self.counters
                .unknown_targets
                .fetch_add(u64::from(unknown), Ordering::Relaxed);
        }
        if retired > 0 {
            self.counters
                .retired_entries
                .fetch_add(u64::from(retired), Ordering::Relaxed);
        }
        if invalid > 0 {
            self.counters
                .invalid_entries
                .fetch_add(u64::from(invalid), Ordering::Relaxed);
        }
        self.emit_transitions(&agent.key, &transitions);
        Ok(MergeOutcome::Merged {
            unknown_targets: unknown,
            retired,
            invalid,
        })
    }

    /// Applies an agent's immediate reachability alert. Returns false for an unknown target.
    pub fn apply_alert(&self, agent: &AgentEntry, alert: &v1::Alert) -> bool {
        let now = self.now();
        let tr = {
            let mut slab = agent.slab.lock();
            let s = alert.slot as usize;
            let idx = if slab
                .records
                .get(s)
                .is_some_and(|r| r.target_id == alert.target_id)
            {
                Some(s)
            } else {
                slab.records
                    .iter()
                    .position(|r| r.target_id == alert.target_id)
            };
            let Some(idx) = idx else {
                let counter = if alert.generation == slab.generation {
                    &self.counters.unknown_targets
                } else {
                    &self.counters.retired_entries
                };
                counter.fetch_add(1, Ordering::Relaxed);
                return false;
            };
            let rec = &mut slab.records[idx];
            rec.alert(alert.reachable, now)
                .map(|tr| (rec.target_id, tr))
        };
        if let Some(tr) = tr {
            self.emit_transitions(&agent.key, &[tr]);
        }
        true
    }

    /// Turns the edges of silent agents UNKNOWN and forgets agents disconnected longer than the
    /// TTL. Returns true when an agent was pruned (pinglists must be rebuilt).
    pub fn sweep(&self) -> bool {
        let now = self.now();
        let mut pruned = false;
        for agent in self.agents() {
            let transitions: Vec<(u64, Transition)> = {
                let mut slab = agent.slab.lock();
                let interval_ticks = duration_ticks(slab.report_interval).max(1);
                let limit = interval_ticks.saturating_mul(self.cfg.stale_after_intervals);
                if slab.stale || now.saturating_sub(slab.last_report) <= limit {
                    Vec::new()
                } else {
                    slab.stale = true;
                    slab.records
                        .iter_mut()
                        .filter_map(|r| Some((r.target_id, r.mark_stale(now)?)))
                        .collect()
                }
            };
            self.emit_transitions(&agent.key, &transitions);
            let expired = {
                let i = agent.info.lock();
                !i.connected
                    && i.disconnected_at.is_some_and(|d| {
                        u64::from(now.saturating_sub(d))
                            >= u64::from(duration_ticks(self.cfg.agent_ttl))
                    })
            };
            if expired {
                self.agents.remove(&agent.key);
                self.rare.remove_agent(&agent.key);
                let addrs = agent.info.lock().addresses.clone();
                for a in addrs {
                    self.endpoints
                        .remove(&endpoint_id(&agent.key.node, agent.key.network, a));
                }
                pruned = true;
            }
        }
        pruned
    }

    fn emit_transitions(&self, src: &AgentKey, transitions: &[(u64, Transition)]) {
        if transitions.is_empty() || !self.events.has_subscribers() {
            return;
        }
        let at_ms = unix_ms();
        for &(target, (from, to)) in transitions {
            self.events.send(GraphEvent::Edge {
                src: src.clone(),
                target,
                from,
                to,
                at_ms,
            });
        }
    }
}

fn duration_ticks(d: Duration) -> u32 {
    u32::try_from(d.as_millis() / u128::from(1000 / TICKS_PER_SEC)).unwrap_or(u32::MAX)
}
