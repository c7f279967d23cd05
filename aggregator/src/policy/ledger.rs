//! Per directed (prober, target) pair, when it was last probed: the evidence that the coverage
//! guarantee holds, rather than the plan's promise that it should.
//!
//! Why a ledger beside the graph: an edge record lives only while its target is in the prober's
//! pinglist, and the budget policy's rotation drops a slow pair after one epoch, taking the
//! record's `last_seen` with it. So before an assignment replaces a prober's records the assigner
//! folds their times in here ([`PairLedger::absorb`]), and every reader folds in the live records
//! too; a pair's time is the later of the two. The time kept is the record's `last_seen` (the
//! last report that touched the edge) of records that have sent probes (`sent_total > 0`).
//!
//! Why one byte per pair: at 5,000 nodes there are 10,000 agents and 10⁸ directed pairs, and the
//! edge record's 176 bytes are budgeted for the few hundred pairs an agent probes now. A stamp
//! counts units of a 128th of the coverage period (7 s at 15 minutes) from a base that moves on
//! by half the range when it fills, so ages are exact to one unit up to about one period; older
//! stamps are clamped to "about one period ago" — already overdue, which is all that matters of
//! them. 10⁸ pairs cost 100 MB, rows and columns of agents gone for two periods are dropped.
//! Rounding always makes a pair look older, never younger, so an overdue count is never hidden,
//! and a pair is only called overdue when it is older than the period by at least a full unit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::v1::Network;
use parking_lot::Mutex;

use crate::graph::sketch::{TICKS_PER_SEC, Tick};
use crate::graph::{AgentEntry, AgentKey, Graph, IdMap, endpoint_id, first_per_family};

/// Stamp units per coverage period.
pub const UNITS_PER_PERIOD: u64 = 128;
/// Shortest unit: one second.
const MIN_UNIT: Tick = TICKS_PER_SEC;
/// The cluster figures are recomputed at most this often (each is a pass over every pair).
pub const SUMMARY_MAX_AGE: Duration = Duration::from_secs(5);

/// Cluster-wide figures over the directed pairs between connected agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairSummary {
    /// Directed pairs: every connected agent towards every address of every other node's
    /// connected agents (all network combinations).
    pub pairs: u64,
    /// Pairs whose both ends have been connected for a whole period, yet not probed within it.
    pub overdue: u64,
    /// Pairs never probed (new ones included).
    pub never: u64,
    /// The largest age among pairs whose both ends have been connected for a whole period: since
    /// the last probe, or since both ends were there for one never probed. Above the period
    /// exactly when `overdue` is not zero.
    pub oldest_age: Duration,
    /// The period the figures are judged against.
    pub period: Duration,
}

/// One pair towards a node: who probes it and how long ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPair {
    /// The prober.
    pub prober: AgentKey,
    /// Network of the target address.
    pub target_network: Network,
    /// The target address.
    pub target_addr: IpAddr,
    /// Age of the last probe (`None`: never probed).
    pub age: Option<Duration>,
    /// The target is in the prober's pinglist now.
    pub in_pinglist: bool,
}

struct Row {
    key: AgentKey,
    node: u32,
    /// Unit index when the row first appeared.
    since: u64,
    /// Unit index when the agent was last seen connected.
    seen: u64,
    /// One stamp per column (shorter when later columns were never written).
    stamps: Vec<u8>,
}

struct Col {
    id: u64,
    node: u32,
    node_name: Arc<str>,
    network: Network,
    addr: IpAddr,
    since: u64,
    seen: u64,
}

/// The matrix of stamps; every method expects the unit to be set.
struct Matrix {
    /// Ticks per unit (0 until the first use fixes it from the period).
    unit: Tick,
    /// Unit index of stamp 1.
    base: u64,
    rows: Vec<Row>,
    row_of: HashMap<AgentKey, u32>,
    cols: Vec<Col>,
    col_of: IdMap<u32>,
    nodes: HashMap<Arc<str>, u32>,
    /// The base moved: drop rows and columns gone for long at the next registration.
    compact_due: bool,
}

/// Which rows and columns are between connected agents now.
struct Universe {
    rows: Vec<bool>,
    cols: Vec<bool>,
}

/// The ledger (cheap to share behind an `Arc`; one lock).
pub struct PairLedger {
    m: Mutex<Matrix>,
    cache: Mutex<Option<(Tick, PairSummary)>>,
}

impl std::fmt::Debug for PairLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.m.lock();
        f.debug_struct("PairLedger")
            .field("rows", &m.rows.len())
            .field("cols", &m.cols.len())
            .finish_non_exhaustive()
    }
}

impl Default for PairLedger {
    fn default() -> Self {
        Self {
            m: Mutex::new(Matrix {
                unit: 0,
                base: 0,
                rows: Vec::new(),
                row_of: HashMap::new(),
                cols: Vec::new(),
                col_of: IdMap::default(),
                nodes: HashMap::new(),
                compact_due: false,
            }),
            cache: Mutex::new(None),
        }
    }
}

impl PairLedger {
    /// Folds `agent`'s live records into the ledger: the assigner calls it before an assignment
    /// replaces them.
    pub fn absorb(&self, graph: &Graph, agent: &AgentEntry, period: Duration) {
        let now = graph.now();
        let mut m = self.m.lock();
        m.fix_unit(period);
        m.advance(now);
        m.absorb(graph, agent, now);
    }

    /// The cluster figures, at most [`SUMMARY_MAX_AGE`] old.
    pub fn summary(&self, graph: &Graph, period: Duration) -> PairSummary {
        let now = graph.now();
        let max_age = SUMMARY_MAX_AGE.as_millis() as u32 / (1000 / TICKS_PER_SEC);
        if let Some((at, s)) = *self.cache.lock()
            && s.period == period
            && now.saturating_sub(at) < max_age
            && at <= now
        {
            return s;
        }
        let s = {
            let mut m = self.m.lock();
            m.fix_unit(period);
            m.advance(now);
            let u = m.universe(graph, now);
            m.summarise(&u, now, period)
        };
        *self.cache.lock() = Some((now, s));
        s
    }

    /// Every pair towards `node`'s addresses from every connected agent of another node, oldest
    /// first (never probed before all); `None` when no connected agent has the node.
    pub fn inbound(&self, graph: &Graph, node: &str, period: Duration) -> Option<Vec<InboundPair>> {
        let now = graph.now();
        let mut m = self.m.lock();
        m.fix_unit(period);
        m.advance(now);
        let u = m.universe(graph, now);
        let targets: Vec<usize> = (0..m.cols.len())
            .filter(|&c| u.cols[c] && &*m.cols[c].node_name == node)
            .collect();
        if targets.is_empty() {
            return None;
        }
        let ids: Vec<u64> = targets.iter().map(|&c| m.cols[c].id).collect();
        // Exact times from the live records (the stamps are rounded to a unit).
        let mut live: HashMap<(u32, u64), Option<Tick>> = HashMap::new();
        for a in graph.agents() {
            let Some(&r) = m.row_of.get(&a.key) else {
                continue;
            };
            let slab = a.slab.lock();
            for rec in slab.records.iter().filter(|x| ids.contains(&x.target_id)) {
                live.insert(
                    (r, rec.target_id),
                    (rec.sent_total > 0).then_some(rec.last_seen),
                );
            }
        }
        let mut out = Vec::new();
        for (r, row) in m.rows.iter().enumerate() {
            if !u.rows[r] || &*row.key.node == node {
                continue;
            }
            for &c in &targets {
                let col = &m.cols[c];
                let rec = live.get(&(r as u32, col.id)).copied();
                let age = match rec {
                    Some(Some(t)) => Some(ticks(now.saturating_sub(t))),
                    _ => m.stamp_age(row.stamps.get(c).copied().unwrap_or(0), now),
                };
                out.push(InboundPair {
                    prober: row.key.clone(),
                    target_network: col.network,
                    target_addr: col.addr,
                    age,
                    in_pinglist: rec.is_some(),
                });
            }
        }
        out.sort_by(|a, b| {
            let old = |p: &InboundPair| p.age.map_or(Duration::MAX, |d| d);
            old(b)
                .cmp(&old(a))
                .then_with(|| a.prober.cmp(&b.prober))
                .then_with(|| a.target_addr.cmp(&b.target_addr))
        });
        Some(out)
    }
}

fn ticks(t: Tick) -> Duration {
    Duration::from_millis(u64::from(t) * u64::from(1000 / TICKS_PER_SEC))
}

fn period_ticks(period: Duration) -> u64 {
    u64::try_from(period.as_millis() / u128::from(1000 / TICKS_PER_SEC)).unwrap_or(u64::MAX)
}

impl Matrix {
    fn fix_unit(&mut self, period: Duration) {
        if self.unit == 0 {
            self.unit = u32::try_from(period_ticks(period) / UNITS_PER_PERIOD)
                .unwrap_or(u32::MAX)
                .max(MIN_UNIT);
        }
    }

    fn unit_of(&self, t: Tick) -> u64 {
        u64::from(t / self.unit)
    }

    /// Age of a stamp at `now` (`None` for 0, never probed): from the start of its unit, so never
    /// younger than the truth.
    fn stamp_age(&self, s: u8, now: Tick) -> Option<Duration> {
        if s == 0 {
            return None;
        }
        let at = (self.base + u64::from(s) - 1) * u64::from(self.unit);
        let at = Tick::try_from(at).unwrap_or(Tick::MAX);
        Some(ticks(now.saturating_sub(at)))
    }

    /// Moves the base so that `now` has a stamp, clamping stamps that fall off the bottom to 1.
    fn advance(&mut self, now: Tick) {
        let nu = self.unit_of(now);
        if nu < self.base + 254 {
            return;
        }
        let shift = nu - self.base - 127;
        self.base += shift;
        for row in &mut self.rows {
            for s in &mut row.stamps {
                if *s != 0 {
                    *s = u64::from(*s).saturating_sub(shift).max(1) as u8;
                }
            }
        }
        self.compact_due = true;
    }

    /// Drops rows and columns last seen before unit `keep_after`.
    fn compact(&mut self, keep_after: u64) {
        if self.rows.iter().all(|r| r.seen >= keep_after)
            && self.cols.iter().all(|c| c.seen >= keep_after)
        {
            return;
        }
        let kept: Vec<usize> = (0..self.cols.len())
            .filter(|&c| self.cols[c].seen >= keep_after)
            .collect();
        self.rows.retain(|r| r.seen >= keep_after);
        for row in &mut self.rows {
            row.stamps = kept
                .iter()
                .map(|&c| row.stamps.get(c).copied().unwrap_or(0))
                .collect();
        }
        let mut cols = std::mem::take(&mut self.cols);
        let mut i = 0;
        cols.retain(|_| {
            i += 1;
            kept.binary_search(&(i - 1)).is_ok()
        });
        self.cols = cols;
        self.row_of = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key.clone(), i as u32))
            .collect();
        self.col_of = self
            .cols
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i as u32))
            .collect();
    }

    fn node(&mut self, name: &Arc<str>) -> u32 {
        let n = self.nodes.len() as u32;
        *self.nodes.entry(name.clone()).or_insert(n)
    }

    fn row(&mut self, key: &AgentKey, now_u: u64) -> usize {
        if let Some(&r) = self.row_of.get(key) {
            return r as usize;
        }
        let node = self.node(&key.node);
        self.rows.push(Row {
            key: key.clone(),
            node,
            since: now_u,
            seen: now_u,
            stamps: Vec::new(),
        });
        self.row_of
            .insert(key.clone(), (self.rows.len() - 1) as u32);
        self.rows.len() - 1
    }

    fn col(
        &mut self,
        id: u64,
        node: &Arc<str>,
        network: Network,
        addr: IpAddr,
        now_u: u64,
    ) -> usize {
        if let Some(&c) = self.col_of.get(&id) {
            let col = &mut self.cols[c as usize];
            col.addr = addr;
            return c as usize;
        }
        let n = self.node(node);
        self.cols.push(Col {
            id,
            node: n,
            node_name: node.clone(),
            network,
            addr,
            since: now_u,
            seen: now_u,
        });
        self.col_of.insert(id, (self.cols.len() - 1) as u32);
        self.cols.len() - 1
    }

    fn put(&mut self, r: usize, c: usize, t: Tick) {
        let u = self.unit_of(t);
        let s = (u.saturating_sub(self.base) + 1).min(255) as u8;
        let stamps = &mut self.rows[r].stamps;
        if stamps.len() <= c {
            stamps.resize(c + 1, 0);
        }
        stamps[c] = stamps[c].max(s);
    }

    fn absorb(&mut self, graph: &Graph, agent: &AgentEntry, now: Tick) {
        let now_u = self.unit_of(now);
        let probed: Vec<(u64, Tick)> = agent
            .slab
            .lock()
            .records
            .iter()
            .filter(|r| r.sent_total > 0)
            .map(|r| (r.target_id, r.last_seen))
            .collect();
        if probed.is_empty() {
            return;
        }
        let r = self.row(&agent.key, now_u);
        for (id, t) in probed {
            let c = match self.col_of.get(&id) {
                Some(&c) => c as usize,
                None => {
                    let Some(e) = graph.endpoint(id) else {
                        continue;
                    };
                    self.col(id, &e.node, e.network, e.addr, now_u)
                }
            };
            self.put(r, c, t);
        }
    }

    /// Registers the connected agents and their addresses and folds in every live record.
    fn universe(&mut self, graph: &Graph, now: Tick) -> Universe {
        let now_u = self.unit_of(now);
        let agents = graph.agents();
        let mut live_keys = Vec::new();
        let mut live_ids = Vec::new();
        for a in &agents {
            let (connected, addrs) = {
                let i = a.info.lock();
                (i.connected, first_per_family(&i.addresses))
            };
            if !connected {
                continue;
            }
            let r = self.row(&a.key, now_u);
            self.rows[r].seen = now_u;
            live_keys.push(a.key.clone());
            for addr in addrs {
                let id = endpoint_id(&a.key.node, a.key.network, addr);
                let c = self.col(id, &a.key.node, a.key.network, addr, now_u);
                self.cols[c].seen = now_u;
                live_ids.push(id);
            }
        }
        if std::mem::take(&mut self.compact_due) {
            // Agents gone for two periods leave the ledger (once per move of the base).
            self.compact(now_u.saturating_sub(2 * UNITS_PER_PERIOD));
        }
        for a in &agents {
            self.absorb(graph, a, now);
        }
        let mut u = Universe {
            rows: vec![false; self.rows.len()],
            cols: vec![false; self.cols.len()],
        };
        for k in &live_keys {
            u.rows[self.row_of[k] as usize] = true;
        }
        for id in &live_ids {
            u.cols[self.col_of[id] as usize] = true;
        }
        u
    }

    fn summarise(&self, u: &Universe, now: Tick, period: Duration) -> PairSummary {
        let now_u = self.unit_of(now);
        // The period in units; a pair is overdue when its stamp is more than that many units
        // behind now, so its true age is above the period whatever the rounding.
        let pu = period_ticks(period).div_ceil(u64::from(self.unit));
        let mut s = PairSummary {
            period,
            ..PairSummary::default()
        };
        let mut oldest_u = 0u64;
        let live_cols: Vec<usize> = (0..self.cols.len()).filter(|&c| u.cols[c]).collect();
        for (r, row) in self.rows.iter().enumerate() {
            if !u.rows[r] {
                continue;
            }
            for &c in &live_cols {
                let col = &self.cols[c];
                if col.node == row.node {
                    continue;
                }
                s.pairs += 1;
                let st = row.stamps.get(c).copied().unwrap_or(0);
                let both = row.since.max(col.since);
                let established = both + pu <= now_u;
                let age_u = if st == 0 {
                    s.never += 1;
                    now_u.saturating_sub(both)
                } else {
                    now_u.saturating_sub(self.base + u64::from(st) - 1)
                };
                if !established {
                    continue;
                }
                if st == 0 || age_u > pu {
                    s.overdue += 1;
                }
                oldest_u = oldest_u.max(age_u);
            }
        }
        s.oldest_age = ticks(Tick::try_from(oldest_u * u64::from(self.unit)).unwrap_or(Tick::MAX));
        s
    }
}

#[cfg(test)]
mod tests;
