//! The budget pinglist (`--pinglist budget`, the default): full mesh while it fits in an agent's
//! probe budget, and beyond that a fast set that detects a node's failure in seconds plus a
//! rotating slow set that still probes every directed pair once per coverage period.
//!
//! Why: a full mesh costs every agent (2N - 1) × 10 probes/s; at 5,000 nodes that is ~100,000
//! probes/s per agent, far beyond any node. Sampling a fixed number of peers (the usual answer)
//! loses the guarantee that every pair is ever measured; stretching the interval loses detection
//! time. This policy keeps both, within `--probe-budget-pps`:
//!
//! - **Fast set.** Every agent is probed at the full rate by at least `k` (`--fast-probers`)
//!   agents of its own network on other nodes. They are chosen per target by rendezvous (HRW)
//!   hashing — the top scores of `hash(prober, target)` — so adding or removing a node moves only
//!   the choices that involved it. When zones are known, three quarters of them are same-zone
//!   peers (the same failure domain, and the cheaper path) and the rest come from other zones, one
//!   per zone before a second from any, so a zone partition is seen from both sides at once.
//!   A prober already at its budget is skipped for the next-ranked one, so the budget holds.
//! - **Slow set.** The assignment message has one probe interval for all its targets, so a lower
//!   rate is made by time-sharing: the rest of the budget probes one arc of the agent's other
//!   targets (all pairs of every network combination) per epoch. Targets sit on a ring by their
//!   id (a uniform hash), each agent's ring turned by its own offset and cut into equal arcs that
//!   hold [`FILL`] of a window on average, a full arc passing its last targets on to the next; so
//!   after one epoch per arc every target was probed. A node joining or leaving changes only the
//!   arc its addresses land in, so an agent's list changes with probability about 2 / arcs (3 %
//!   at 5,000 nodes, where there are 75 arcs), plus the few fast sets HRW moves. The epoch is the
//!   coverage period (`--coverage-period`) divided by the number of arcs, but at least
//!   [`MIN_EPOCH`] so a slow pair is measured for a few reports; when that floor binds, the real
//!   cycle is longer than asked and [`Coverage::cycle`] says so. Epochs count wall-clock time, and
//!   the assigner's fingerprint keeps an agent whose list did not change from being sent it again.
//! - **Staggered epochs.** Each agent's epochs start at one of [`PHASES`] evenly spaced offsets
//!   (by a hash of the agent), so a rotation moves an eighth of the lists at a time instead of
//!   all of them at once: at 5,000 nodes that is 1,250 new lists every 1.7 s rather than 10,000
//!   every 13 s, and the reports in flight that still name the old targets, the assignment
//!   messages to encode and the graph's slab swaps are spread the same way. A round woken only
//!   by the rotation recomputes only the lists whose epoch moved ([`PinglistSource::rotated`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::v1::Network;
use parking_lot::Mutex;

use super::{Peer, PinglistSource, PlannedTarget, Shared};
use crate::graph::{AgentKey, first_per_family};

/// How full a slow arc is on average: the rest is room for the arcs' random sizes (arcs are cut
/// from hashes), so a full arc is rare and passes only a few targets on.
pub const FILL: f64 = 0.8;

/// Shortest epoch: a slow pair is measured for at least this long (five reports at the default
/// report interval) before the window moves on.
pub const MIN_EPOCH: Duration = Duration::from_secs(5);

/// How many evenly spaced offsets the agents' epochs start at (see "Staggered epochs" above).
pub const PHASES: u64 = 8;

/// The policy's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Probes per second one agent may send.
    pub budget_pps: u32,
    /// Fast probers every agent has on its own network.
    pub fast_probers: u32,
    /// Time between probes to one target (the assignment's probe interval).
    pub probe_interval: Duration,
    /// Every directed pair is probed at least once within this.
    pub coverage_period: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            budget_pps: 2000,
            fast_probers: 8,
            probe_interval: Duration::from_millis(100),
            coverage_period: Duration::from_secs(15 * 60),
        }
    }
}

impl BudgetConfig {
    /// Targets one agent may have: the budget at one probe per interval each.
    #[must_use]
    pub fn slots(&self) -> usize {
        (f64::from(self.budget_pps) * self.probe_interval.as_secs_f64()).floor() as usize
    }

    /// Targets one agent needs so that every agent gets `k` fast probers whatever the cluster
    /// looks like: `k` dual-stack peers cost `2k` targets, a prober may carry twice the average
    /// fast load, and one target stays for the slow rotation.
    #[must_use]
    pub fn min_slots(&self) -> usize {
        4 * self.fast_probers as usize + 1
    }

    /// [`BudgetConfig::min_slots`] in probes per second.
    #[must_use]
    pub fn min_budget_pps(&self) -> u32 {
        let per_target = 1.0 / self.probe_interval.as_secs_f64().max(1e-3);
        (self.min_slots() as f64 * per_target).ceil() as u32
    }

    /// Refuses numbers the policy cannot keep, naming the minimum.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.fast_probers) {
            return Err(format!(
                "--fast-probers must be within 1..=64, got {}",
                self.fast_probers
            ));
        }
        if self.coverage_period < MIN_EPOCH {
            return Err(format!(
                "--coverage-period must be at least {MIN_EPOCH:?}, got {:?}",
                self.coverage_period
            ));
        }
        if self.slots() < self.min_slots() {
            return Err(format!(
                "--probe-budget-pps {} is too small for --fast-probers {} at --probe-interval {:?}: \
                 the minimum is {} ({} targets: {} fast probers of dual-stack peers at twice the \
                 average load, plus one rotating target)",
                self.budget_pps,
                self.fast_probers,
                self.probe_interval,
                self.min_budget_pps(),
                self.min_slots(),
                self.fast_probers
            ));
        }
        Ok(())
    }
}

/// What the current plan guarantees, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Per network: the fewest fast probers any agent of it has, and how many agents it has.
    pub fast_probers_min: BTreeMap<Network, (u32, usize)>,
    /// Time in which every agent's slow window has passed over all its targets (zero while every
    /// list fits: then nothing rotates and every pair is probed all the time).
    pub cycle: Duration,
    /// The epoch: how long the slow window stays put.
    pub epoch: Duration,
    /// `--fast-probers`.
    pub fast_probers_wanted: u32,
    /// Every agent of the plan with its fast probers, fewest first.
    pub agents: Vec<(AgentKey, u32)>,
}

/// The fast sets of one membership.
#[derive(Debug, Default)]
struct Plan {
    /// Fingerprint of the membership and zones it was computed from.
    key: u64,
    /// Prober -> the nodes it probes fast (on its own network).
    fast: HashMap<AgentKey, HashSet<Arc<str>>>,
    /// Target agent -> how many fast probers it got.
    probers: HashMap<AgentKey, u32>,
    /// Epochs for the largest agent to cover all its targets.
    cycles: u64,
    epoch: Duration,
    /// Some agent's full list is larger than the budget.
    rotating: bool,
}

/// Where the zones of nodes come from (the graph, set by discovery).
pub type ZoneSource = Arc<dyn Fn() -> BTreeMap<Arc<str>, Arc<str>> + Send + Sync>;

/// The budget policy over `inner`'s full lists (the full mesh of connected agents, or the
/// Kubernetes model's).
pub struct Budget {
    cfg: BudgetConfig,
    slots: usize,
    inner: Arc<dyn PinglistSource>,
    zones: ZoneSource,
    plan: Mutex<Arc<Plan>>,
    /// The peer list [`PinglistSource::prepare`] planned for this round: its address, length and
    /// first and last keys, so the round's calls skip fingerprinting the membership again.
    prepared: Mutex<Option<(usize, usize, AgentKey, AgentKey)>>,
    /// The prepared round's shared list, indexed ([`PinglistSource::shared`]).
    shared: Mutex<Option<Arc<Indexed>>>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("cfg", &self.cfg)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Budget {
    /// A policy with `cfg` (checked with [`BudgetConfig::validate`] first) over `inner`.
    #[must_use]
    pub fn new(cfg: BudgetConfig, inner: Arc<dyn PinglistSource>, zones: ZoneSource) -> Self {
        Self {
            slots: cfg.slots().max(1),
            cfg,
            inner,
            zones,
            plan: Mutex::new(Arc::new(Plan::default())),
            prepared: Mutex::new(None),
            shared: Mutex::new(None),
        }
    }

    /// The targets of `agent` at wall-clock time `now` (since the Unix epoch).
    #[must_use]
    pub fn targets_at(
        &self,
        agent: &AgentKey,
        peers: &[Peer],
        now: Duration,
    ) -> Vec<PlannedTarget> {
        let round = round_of(peers);
        if round.is_some() && *self.prepared.lock() == round {
            let shared = self.shared.lock().clone();
            if let Some(ix) = shared {
                let plan = self.plan.lock().clone();
                return self.targets_shared(agent, peers, now, &plan, &ix);
            }
        }
        let full = self.inner.targets(agent, peers);
        // Planned even when it fits, so the coverage figures follow the membership.
        let plan = self.plan(peers);
        if full.len() <= self.slots {
            return full;
        }
        let epoch = agent_epoch(agent, now, plan.epoch);
        select(
            agent,
            full,
            plan.fast.get(agent),
            self.slots,
            epoch,
            plan.cycles,
        )
    }

    /// [`Budget::targets_at`] from the round's shared list: the same list, built from the few
    /// targets it keeps (binary searches over the list by node and by id) instead of the
    /// agent's whole full list.
    fn targets_shared(
        &self,
        agent: &AgentKey,
        peers: &[Peer],
        now: Duration,
        plan: &Plan,
        ix: &Indexed,
    ) -> Vec<PlannedTarget> {
        let all = &ix.s.targets;
        let (v4, v6) = self.inner.families(agent, peers);
        let family = |t: &PlannedTarget| if t.addr.is_ipv4() { v4 } else { v6 };
        let keep = |t: &PlannedTarget| family(t) && !ix.s.own(agent, t);
        let own: Vec<&PlannedTarget> = all[ix.node_range(&agent.node)]
            .iter()
            .filter(|t| family(t) && ix.s.own(agent, t))
            .collect();
        let families: Vec<&Vec<u32>> = [(v4, &ix.by_id[0]), (v6, &ix.by_id[1])]
            .into_iter()
            .filter_map(|(on, v)| on.then_some(v))
            .collect();
        let total = families.iter().map(|v| v.len()).sum::<usize>() - own.len();
        if total <= self.slots {
            return all.iter().filter(|t| keep(t)).cloned().collect();
        }
        let mut fast_all: Vec<PlannedTarget> = Vec::new();
        for node in plan.fast.get(agent).into_iter().flatten() {
            fast_all.extend(
                all[ix.node_range(node)]
                    .iter()
                    .filter(|t| t.network == agent.network && keep(t))
                    .cloned(),
            );
        }
        fast_all.sort_by(PlannedTarget::slot_order);
        let fast_ids: HashSet<u64> = fast_all.iter().map(|t| t.id).collect();
        let mut fast = fast_all.clone();
        fast.truncate(self.slots.saturating_sub(1));
        let window = self.slots - fast.len();
        let rest_len = total - fast_all.len();
        let arcs = plan.cycles;
        if rest_len <= window || (arcs as usize).saturating_mul(window) < rest_len {
            // Not the arcs: the rest in list order, as the full path has it.
            let rest: Vec<PlannedTarget> = all
                .iter()
                .filter(|t| keep(t) && !fast_ids.contains(&t.id))
                .cloned()
                .collect();
            if rest.len() <= window {
                fast.extend(rest);
            } else {
                let offset = ring_offset(agent);
                let epoch = agent_epoch(agent, now, plan.epoch);
                fast.extend(slow_window(rest, window, offset, epoch, arcs));
            }
            fast.sort_by(PlannedTarget::slot_order);
            return fast;
        }
        let n = arcs as usize;
        let offset = ring_offset(agent);
        let rel = |t: &PlannedTarget| t.id.wrapping_sub(offset);
        let arc_of = |t: &PlannedTarget| ((u128::from(rel(t)) * u128::from(arcs)) >> 64) as usize;
        // Arc e holds the ring positions from lower(e) up to lower(e + 1).
        let lower = |e: usize| -> u128 { ((e as u128) << 64).div_ceil(u128::from(arcs)) };
        // Per family: the ids sorted by ring position (the id order turned at the offset), and
        // how many lie below a position.
        let rings: Vec<(&Vec<u32>, usize)> = families
            .iter()
            .map(|v| (*v, v.partition_point(|&i| all[i as usize].id < offset)))
            .collect();
        let at = |v: &Vec<u32>, p0: usize, k: usize| &all[v[(p0 + k) % v.len()] as usize];
        let rank = |v: &Vec<u32>, p0: usize, pos: u128| -> usize {
            let (mut lo, mut hi) = (0, v.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                if u128::from(rel(at(v, p0, mid))) < pos {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let mut counts = vec![0usize; n];
        for (e, c) in counts.iter_mut().enumerate() {
            for &(v, p0) in &rings {
                *c += rank(v, p0, lower(e + 1)) - rank(v, p0, lower(e));
            }
        }
        for t in own.iter().copied().chain(fast_all.iter()) {
            counts[arc_of(t)] -= 1;
        }
        let r = ArcRun::of(&counts, window, agent_epoch(agent, now, plan.epoch) % arcs);
        let mut run: Vec<(usize, u64, PlannedTarget)> = Vec::new();
        for step in 0..=r.back {
            let e = (r.first + step) % n;
            for &(v, p0) in &rings {
                for k in rank(v, p0, lower(e))..rank(v, p0, lower(e + 1)) {
                    let t = at(v, p0, k);
                    if keep(t) && !fast_ids.contains(&t.id) {
                        run.push((step, rel(t), t.clone()));
                    }
                }
            }
        }
        fast.extend(r.take(run, window));
        fast.sort_by(PlannedTarget::slot_order);
        fast
    }

    /// What the current plan guarantees.
    #[must_use]
    pub fn coverage(&self) -> Coverage {
        let plan = self.plan.lock().clone();
        let mut min: BTreeMap<Network, (u32, usize)> = BTreeMap::new();
        for (key, &n) in &plan.probers {
            let e = min.entry(key.network).or_insert((u32::MAX, 0));
            e.0 = e.0.min(n);
            e.1 += 1;
        }
        let mut agents: Vec<(AgentKey, u32)> =
            plan.probers.iter().map(|(k, &n)| (k.clone(), n)).collect();
        agents.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        Coverage {
            fast_probers_wanted: self.cfg.fast_probers,
            agents,
            fast_probers_min: min,
            cycle: if plan.rotating {
                plan.epoch * u32::try_from(plan.cycles).unwrap_or(u32::MAX)
            } else {
                Duration::ZERO
            },
            epoch: plan.epoch,
        }
    }

    /// The plan of this membership, computed once per change.
    fn plan(&self, peers: &[Peer]) -> Arc<Plan> {
        let round = round_of(peers);
        if round.is_some() && *self.prepared.lock() == round {
            return self.plan.lock().clone();
        }
        self.replan(peers)
    }

    /// Fingerprints the membership and zones, planning again when they changed.
    fn replan(&self, peers: &[Peer]) -> Arc<Plan> {
        let zones = (self.zones)();
        let key = membership_key(peers, &zones);
        let mut cur = self.plan.lock();
        if cur.key != key || cur.epoch.is_zero() {
            *cur = Arc::new(build_plan(&self.cfg, self.slots, peers, &zones, key));
        }
        cur.clone()
    }
}

impl PinglistSource for Budget {
    fn targets(&self, agent: &AgentKey, peers: &[Peer]) -> Vec<PlannedTarget> {
        self.targets_at(agent, peers, super::wall_clock())
    }

    fn prepare(&self, peers: &[Peer]) {
        self.replan(peers);
        *self.shared.lock() = self.inner.shared(peers).map(|s| Arc::new(Indexed::new(s)));
        *self.prepared.lock() = round_of(peers);
    }

    fn refresh_in(&self) -> Option<Duration> {
        let plan = self.plan.lock().clone();
        if !plan.rotating || plan.epoch.is_zero() {
            return None;
        }
        let epoch = millis(plan.epoch).max(1);
        let now = millis(super::wall_clock());
        // The next epoch start of any phase group.
        let next = (0..PHASES)
            .map(|g| epoch - (now + phase_shift(g, epoch)) % epoch)
            .min()
            .unwrap_or(epoch);
        Some(Duration::from_millis(next))
    }

    fn rotated(&self, agent: &AgentKey, since: Duration, now: Duration) -> bool {
        let plan = self.plan.lock().clone();
        plan.rotating
            && !plan.epoch.is_zero()
            && agent_epoch(agent, since, plan.epoch) != agent_epoch(agent, now, plan.epoch)
    }

    fn coverage(&self) -> Option<Coverage> {
        Some(Budget::coverage(self))
    }
}

/// What identifies one round's peer list (see [`Budget::prepare`](PinglistSource::prepare)).
fn round_of(peers: &[Peer]) -> Option<(usize, usize, AgentKey, AgentKey)> {
    Some((
        peers.as_ptr() as usize,
        peers.len(),
        peers.first()?.key.clone(),
        peers.last()?.key.clone(),
    ))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Where phase group `g`'s epochs start, in milliseconds into an `epoch_ms` epoch.
fn phase_shift(g: u64, epoch_ms: u64) -> u64 {
    g * epoch_ms / PHASES
}

/// The epoch `agent` is in at wall-clock time `now`: its phase group's epochs are shifted by
/// [`phase_shift`], so the groups' lists move at different times.
fn agent_epoch(agent: &AgentKey, now: Duration, epoch: Duration) -> u64 {
    let e = millis(epoch).max(1);
    let g = h64(&(agent.node.as_ref(), agent.network as i32, "phase")) % PHASES;
    (millis(now).saturating_add(phase_shift(g, e))) / e
}

/// One agent's list: its fast targets, then the slow window of this epoch over the rest
/// ([`slow_window`]), in (node, network, address) order.
fn select(
    agent: &AgentKey,
    full: Vec<PlannedTarget>,
    fast_nodes: Option<&HashSet<Arc<str>>>,
    slots: usize,
    epoch: u64,
    arcs: u64,
) -> Vec<PlannedTarget> {
    let is_fast = |t: &PlannedTarget| {
        t.network == agent.network && fast_nodes.is_some_and(|f| f.contains(&t.node))
    };
    let (mut fast, rest): (Vec<_>, Vec<_>) = full.into_iter().partition(is_fast);
    // The plan counted the peers' addresses; an inner list with more keeps the slow slot.
    fast.truncate(slots.saturating_sub(1));
    let window = slots - fast.len();
    if rest.len() <= window {
        fast.extend(rest);
    } else {
        let offset = ring_offset(agent);
        fast.extend(slow_window(rest, window, offset, epoch, arcs));
    }
    fast.sort_by(PlannedTarget::slot_order);
    fast
}

/// The slow targets of one epoch: the agent's arc of the ring of target ids.
///
/// Target ids are uniform 64-bit hashes, so they place every target on a ring; the agent's ring,
/// turned by an offset of its own (so the agents' slow probes spread over all targets), is cut
/// into `arcs` equal arcs and epoch `e` probes arc `e mod arcs`. Arcs hold about `FILL` of a
/// window on average; the targets beyond `window` in an arc move on to the next arc in ring order
/// (and on from there while arcs are full), so no list exceeds the budget and every target is in
/// exactly one arc of every cycle.
///
/// Why a ring and not a window over the list's positions: a node joining or leaving shifts every
/// position after it, which changed almost every agent's window; on the ring it only changes the
/// arc it lands in, so an agent's list changes with probability about (its addresses) / `arcs`.
fn slow_window(
    rest: Vec<PlannedTarget>,
    window: usize,
    offset: u64,
    epoch: u64,
    arcs: u64,
) -> Vec<PlannedTarget> {
    let len = rest.len();
    // Capacity short of the list (a prober far above the average fast load): the positional
    // window, which needs only `len / window` epochs and so still fits in the plan's cycle.
    if (arcs as usize).saturating_mul(window) < len {
        let cycles = (len as u64).div_ceil(window as u64);
        let start = (offset % len as u64) + (epoch % cycles) * window as u64;
        let mut rest: Vec<Option<PlannedTarget>> = rest.into_iter().map(Some).collect();
        return (0..window as u64)
            .filter_map(|i| rest[((start + i) % len as u64) as usize].take())
            .collect();
    }
    let n = arcs as usize;
    let rel = |t: &PlannedTarget| t.id.wrapping_sub(offset);
    let arc_of = |t: &PlannedTarget| ((u128::from(rel(t)) * u128::from(arcs)) >> 64) as usize;
    let mut counts = vec![0usize; n];
    for t in &rest {
        counts[arc_of(t)] += 1;
    }
    let r = ArcRun::of(&counts, window, epoch % arcs);
    let run: Vec<(usize, u64, PlannedTarget)> = rest
        .into_iter()
        .filter_map(|t| {
            let step = (arc_of(&t) + n - r.first) % n;
            (step <= r.back).then(|| (step, rel(&t), t))
        })
        .collect();
    r.take(run, window)
}

/// Which arcs one epoch's slow window is drawn from.
struct ArcRun {
    /// The earliest arc whose targets may be carried into this epoch's arc.
    first: usize,
    /// Arcs from `first` to this epoch's arc.
    back: usize,
    /// Targets of the run before this epoch's arc that are not carried into it.
    skip: usize,
}

impl ArcRun {
    /// The run for epoch arc `e0` given every arc's target count.
    fn of(counts: &[usize], window: usize, e0: u64) -> Self {
        let n = counts.len();
        // Targets carried into each arc from the arcs before it. With spare capacity the carry
        // is zero somewhere, so a second lap round the ring reaches the fixed point; a third is
        // spare.
        let mut carry_in = vec![0usize; n];
        let mut carry = 0usize;
        for step in 0..3 * n {
            let e = step % n;
            carry_in[e] = carry;
            carry = (counts[e] + carry).saturating_sub(window);
        }
        let e0 = e0 as usize;
        // Walk back over the arcs before e0 until they hold the targets carried into it.
        let mut back = 0usize;
        let mut held = 0usize;
        while held < carry_in[e0] && back < n - 1 {
            back += 1;
            held += counts[(e0 + n - back) % n];
        }
        Self {
            first: (e0 + n - back) % n,
            back,
            skip: held.saturating_sub(carry_in[e0]),
        }
    }

    /// This epoch's window from the run's (arc step, ring position, target) entries: the targets
    /// carried in (the last ones before the arc) then the arc's own.
    fn take(&self, mut run: Vec<(usize, u64, PlannedTarget)>, window: usize) -> Vec<PlannedTarget> {
        run.sort_unstable_by_key(|(step, rel, _)| (*step, *rel));
        run.into_iter()
            .skip(self.skip)
            .take(window)
            .map(|(_, _, t)| t)
            .collect()
    }
}

/// A round's shared list with the two indexes the budgeted lists are read through.
#[derive(Debug)]
struct Indexed {
    s: Shared,
    /// Per family (IPv4, IPv6): positions in the list, sorted by target id.
    by_id: [Vec<u32>; 2],
}

impl Indexed {
    fn new(s: Shared) -> Self {
        let mut by_id: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
        for (i, t) in s.targets.iter().enumerate() {
            by_id[usize::from(t.addr.is_ipv6())].push(i as u32);
        }
        for v in &mut by_id {
            v.sort_unstable_by_key(|&i| s.targets[i as usize].id);
        }
        Self { s, by_id }
    }

    /// Where `node`'s targets are in the list (sorted by node first).
    fn node_range(&self, node: &str) -> std::ops::Range<usize> {
        let t = &self.s.targets;
        t.partition_point(|x| &*x.node < node)..t.partition_point(|x| &*x.node <= node)
    }
}

/// How far `agent`'s ring of targets is turned, so the agents' slow windows spread over all
/// targets.
fn ring_offset(agent: &AgentKey) -> u64 {
    h64(&(agent.node.as_ref(), agent.network as i32))
}

fn h64<T: std::hash::Hash>(v: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// splitmix64 finaliser: the HRW score of a (prober, target) pair from their name hashes.
fn score(prober: u64, target: u64) -> u64 {
    let mut z = prober ^ target.rotate_left(29).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn membership_key(peers: &[Peer], zones: &BTreeMap<Arc<str>, Arc<str>>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in peers {
        (&p.key, first_per_family(&p.addresses).len()).hash(&mut h);
    }
    zones.hash(&mut h);
    h.finish().max(1)
}

/// Fast sets for every agent of `peers`, network by network.
fn build_plan(
    cfg: &BudgetConfig,
    slots: usize,
    peers: &[Peer],
    zones: &BTreeMap<Arc<str>, Arc<str>>,
    key: u64,
) -> Plan {
    let k = cfg.fast_probers as usize;
    let cap = slots.saturating_sub(1);
    let mut plan = Plan {
        key,
        ..Plan::default()
    };
    let mut load: HashMap<&AgentKey, usize> = HashMap::new();
    let streams: usize = peers
        .iter()
        .map(|p| first_per_family(&p.addresses).len().max(1))
        .sum();
    // Largest full list: every stream but one's own.
    let largest = streams.saturating_sub(1);
    plan.rotating = largest > slots;
    for net in [Network::Pod, Network::Host] {
        let mut members: Vec<&Peer> = peers.iter().filter(|p| p.key.network == net).collect();
        members.sort_by(|a, b| a.key.cmp(&b.key));
        members.dedup_by(|a, b| a.key == b.key);
        let names: Vec<u64> = members.iter().map(|p| h64(&p.key.node.as_ref())).collect();
        let zone_of: Vec<Option<&Arc<str>>> =
            members.iter().map(|p| zones.get(&p.key.node)).collect();
        let cost: Vec<usize> = members
            .iter()
            .map(|p| first_per_family(&p.addresses).len().max(1))
            .collect();
        if !plan.rotating {
            // The full mesh: every other agent of the network probes it all the time.
            for p in &members {
                let others = members.iter().filter(|o| o.key.node != p.key.node).count();
                plan.probers
                    .insert(p.key.clone(), u32::try_from(others).unwrap_or(u32::MAX));
            }
            continue;
        }
        // Targets in a stable order of their own, so which target meets a full prober first does
        // not depend on names sorting next to each other.
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&t| score(names[t], 0x5EED));
        for t in order {
            let chosen = choose(t, &members, &names, &zone_of, k, |p| {
                load.get(&members[p].key).copied().unwrap_or(0) + cost[t] <= cap
            });
            for &p in &chosen {
                *load.entry(&members[p].key).or_default() += cost[t];
                plan.fast
                    .entry(members[p].key.clone())
                    .or_default()
                    .insert(members[t].key.node.clone());
            }
            plan.probers.insert(
                members[t].key.clone(),
                u32::try_from(chosen.len()).unwrap_or(0),
            );
        }
    }
    // Arcs for the slow windows, from numbers that membership changes hardly move (so the arcs
    // stay put): the window left beside a fast load of twice the average, filled to FILL.
    let cost = peers
        .iter()
        .map(|p| first_per_family(&p.addresses).len().max(1))
        .max()
        .unwrap_or(1);
    let nominal = slots.saturating_sub(2 * k * cost).max(1) as f64 * FILL;
    let arcs = (largest as f64 / nominal).ceil() as u64;
    // Smallest window: the budget less the heaviest fast load; an agent whose arcs cannot hold
    // its list falls back to the positional window, which needs at most this many epochs.
    let window = slots
        .saturating_sub(load.values().copied().max().unwrap_or(0))
        .max(1);
    plan.cycles = arcs.max((largest as u64).div_ceil(window as u64)).max(1);
    let epoch = cfg.coverage_period / u32::try_from(plan.cycles).unwrap_or(u32::MAX);
    plan.epoch = epoch.max(MIN_EPOCH);
    plan
}

/// Candidates as (HRW score, index).
type Ranked = Vec<(u64, usize)>;

/// The fast probers of target `t` among `members` (one network): rendezvous-ranked, three
/// quarters from `t`'s zone when zones are known, the rest from other zones one per zone first;
/// `fits(p)` says whether prober `p` still has room.
///
/// Only the best `4k` of each side are ranked (linear selection, not a sort of all N), which is
/// what keeps a plan for 5,000 nodes quick; when full probers leave too few of those, it ranks
/// them all.
fn choose(
    t: usize,
    members: &[&Peer],
    names: &[u64],
    zone_of: &[Option<&Arc<str>>],
    k: usize,
    fits: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let node = &members[t].key.node;
    let zoned = zone_of[t].is_some();
    let (local, remote): (Ranked, Ranked) = (0..members.len())
        .filter(|&p| &members[p].key.node != node)
        .map(|p| (score(names[p], names[t]), p))
        .partition(|&(_, p)| !zoned || zone_of[p] == zone_of[t]);
    let want_local = if zoned { k - k / 4 } else { k };
    let quick = pick(&local, &remote, zone_of, 4 * k, want_local, k, &fits);
    if quick.len() >= k || (local.len() <= 4 * k && remote.len() <= 4 * k) {
        return quick;
    }
    pick(&local, &remote, zone_of, usize::MAX, want_local, k, &fits)
}

/// [`choose`] over the best `m` of each side.
fn pick(
    local: &Ranked,
    remote: &Ranked,
    zone_of: &[Option<&Arc<str>>],
    m: usize,
    want_local: usize,
    k: usize,
    fits: &impl Fn(usize) -> bool,
) -> Vec<usize> {
    let best = |v: &Ranked| -> Ranked {
        let mut v = v.clone();
        if v.len() > m {
            v.select_nth_unstable_by(m - 1, |a, b| b.cmp(a));
            v.truncate(m);
        }
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    };
    let local = best(local);
    // One per zone before a second from any: rank within its zone first, then score.
    let mut seen: HashMap<Option<&Arc<str>>, usize> = HashMap::new();
    let mut remote: Vec<(usize, u64, usize)> = best(remote)
        .into_iter()
        .map(|(s, p)| {
            let r = seen.entry(zone_of[p]).or_default();
            *r += 1;
            (*r, u64::MAX - s, p)
        })
        .collect();
    remote.sort_unstable();
    let mut out: Vec<usize> = Vec::with_capacity(k);
    let take = |out: &mut Vec<usize>, it: &mut dyn Iterator<Item = usize>, upto: usize| {
        for p in it {
            if out.len() >= upto {
                break;
            }
            if !out.contains(&p) && fits(p) {
                out.push(p);
            }
        }
    };
    take(&mut out, &mut local.iter().map(|&(_, p)| p), want_local);
    take(&mut out, &mut remote.iter().map(|&(_, _, p)| p), k);
    // Too few on one side: the other fills in.
    take(&mut out, &mut local.iter().map(|&(_, p)| p), k);
    out
}

#[cfg(test)]
mod tests;
