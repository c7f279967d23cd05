//! What every simulated agent shares: the truth, the connection pool, each agent's current list
//! (so the scripted events can tell which edges should change) and the counters the figures are
//! made from.
//!
//! Agent `a` is node `a / 2` on the pod (`a` even) or host network; its addresses are private
//! (10.1.x.y pod, 10.2.x.y host) and never contacted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use echomesh_proto::v1::{self, Network};
use parking_lot::Mutex;
use tonic::transport::Channel;

use super::truth::{Truth, rtt_model_us};

/// Agents per node: pod and host network.
pub(crate) const PER_NODE: usize = 2;

/// The node name of node `i`.
pub(crate) fn node_name(i: usize) -> String {
    format!("n{i:05}")
}

/// The node index of a node name made by [`node_name`] (`None` for any other name).
pub(crate) fn node_index(name: &str) -> Option<usize> {
    name.strip_prefix('n')?.parse().ok()
}

/// The agent index of node `node` on `network`.
pub(crate) fn agent_index(node: usize, network: Network) -> usize {
    node * PER_NODE + usize::from(network == Network::Host)
}

/// The network of agent `a`.
pub(crate) fn network_of(a: usize) -> Network {
    if a.is_multiple_of(PER_NODE) {
        Network::Pod
    } else {
        Network::Host
    }
}

/// The address agent `a` announces.
pub(crate) fn agent_addr(a: usize) -> String {
    let (node, plane) = (a / PER_NODE + 1, 1 + a % PER_NODE);
    format!("10.{plane}.{}.{}", (node >> 8) & 255, node & 255)
}

/// Counters of the assignments the agents received.
#[derive(Debug, Default)]
pub(crate) struct AssignCounters {
    /// Assignments received.
    pub(crate) count: AtomicU64,
    /// Their encoded bytes.
    pub(crate) bytes: AtomicU64,
    /// Assignments whose list differed from the session's previous one (or was its first).
    pub(crate) changed: AtomicU64,
    /// Their encoded bytes: what had to be sent.
    pub(crate) changed_bytes: AtomicU64,
}

impl AssignCounters {
    /// (count, bytes, changed, changed bytes) now.
    pub(crate) fn snapshot(&self) -> [u64; 4] {
        [
            self.count.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.changed.load(Ordering::Relaxed),
            self.changed_bytes.load(Ordering::Relaxed),
        ]
    }
}

/// The coverage count of [`Cluster::coverage`].
#[derive(Debug, Default)]
pub(crate) struct CoverageCount {
    /// Directed pairs.
    pub(crate) total: u64,
    /// Of them, in some list since the count started.
    pub(crate) hit: u64,
    /// Sources with a pair not probed.
    pub(crate) sources_missing: u64,
    /// The most pairs one source did not probe.
    pub(crate) most_missing: u64,
    /// A few of the pairs not probed (source agent, target agent).
    pub(crate) examples: Vec<(usize, usize)>,
}

/// Everything the simulated agents share.
pub(crate) struct Cluster {
    /// The simulated network.
    pub(crate) truth: Truth,
    /// Changes whenever the truth does, to wake agents for their alerts.
    pub(crate) truth_tx: tokio::sync::watch::Sender<u64>,
    /// The HTTP/2 connections the sessions share (the aggregator allows 64 streams on one).
    pub(crate) pool: Vec<Channel>,
    /// `Bearer <token>`.
    pub(crate) authorization: String,
    /// Nodes at start (a joining node gets the next index).
    pub(crate) nodes: usize,
    /// Agent slots (nodes at start plus one joiner, both networks).
    pub(crate) agents: usize,
    /// Each agent's current targets (agent indexes), empty before its first assignment.
    pub(crate) lists: Vec<Mutex<Arc<Vec<u32>>>>,
    /// Directed pairs that were in some agent's list since the coverage count started,
    /// one bit per (source agent, target agent).
    covered: Vec<AtomicU64>,
    /// Assignment counters.
    pub(crate) assign: AssignCounters,
    /// Reports acked.
    pub(crate) acks: AtomicU64,
    /// Target entries in acked reports.
    pub(crate) entries: AtomicU64,
    /// Report-to-ack latencies (µs) while `recording`.
    pub(crate) ack_us: Mutex<Vec<u32>>,
    /// Collect ack latencies now.
    pub(crate) recording: AtomicBool,
    /// Alerts sent.
    pub(crate) alerts: AtomicU64,
    /// Sessions that ended with an error (counted, then the agent stops).
    pub(crate) session_errors: AtomicU64,
    /// The first few session errors, for the log.
    pub(crate) first_errors: Mutex<Vec<String>>,
    /// One window of 10 probes per RTT of the model, on the wire.
    hist: HashMap<u64, v1::Histogram>,
}

impl Cluster {
    /// A cluster of `nodes` nodes in zones of `zone_size`, over `pool`.
    pub(crate) fn new(
        nodes: usize,
        zone_size: usize,
        pool: Vec<Channel>,
        authorization: String,
    ) -> Self {
        let agents = (nodes + 1) * PER_NODE;
        let zones = nodes.div_ceil(zone_size.max(1));
        let mut hist = HashMap::new();
        for za in 0..zones {
            for zb in 0..zones {
                let rtt = rtt_model_us(za, zb);
                hist.entry(rtt).or_insert_with(|| window(rtt));
            }
        }
        Self {
            truth: Truth::new(zone_size, zones),
            truth_tx: tokio::sync::watch::channel(0).0,
            pool,
            authorization,
            nodes,
            agents,
            lists: (0..agents)
                .map(|_| Mutex::new(Arc::new(Vec::new())))
                .collect(),
            covered: (0..(agents * agents).div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            assign: AssignCounters::default(),
            acks: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            ack_us: Mutex::new(Vec::new()),
            recording: AtomicBool::new(false),
            alerts: AtomicU64::new(0),
            session_errors: AtomicU64::new(0),
            first_errors: Mutex::new(Vec::new()),
            hist,
        }
    }

    /// The wire histogram of one report window at `rtt_us`.
    pub(crate) fn histogram(&self, rtt_us: u64) -> v1::Histogram {
        self.hist
            .get(&rtt_us)
            .cloned()
            .unwrap_or_else(|| window(rtt_us))
    }

    /// Tells the agents the truth changed.
    pub(crate) fn truth_changed(&self) {
        self.truth_tx.send_replace(self.truth.version());
    }

    /// Marks the pairs `src` -> each of `targets` as probed.
    pub(crate) fn cover(&self, src: usize, targets: &[u32]) {
        for &t in targets {
            let bit = src * self.agents + t as usize;
            self.covered[bit / 64].fetch_or(1 << (bit % 64), Ordering::Relaxed);
        }
    }

    /// Forgets every pair probed so far (the coverage count starts now).
    pub(crate) fn reset_coverage(&self) {
        for w in &self.covered {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Of the directed pairs between different agents of `members`: how many were probed.
    pub(crate) fn coverage(&self, members: &[usize]) -> CoverageCount {
        let mut c = CoverageCount::default();
        for &s in members {
            let mut missed = 0;
            for &t in members {
                if s == t {
                    continue;
                }
                c.total += 1;
                let bit = s * self.agents + t;
                if self.covered[bit / 64].load(Ordering::Relaxed) & (1 << (bit % 64)) != 0 {
                    c.hit += 1;
                } else {
                    missed += 1;
                    if c.examples.len() < 3 {
                        c.examples.push((s, t));
                    }
                }
            }
            if missed > 0 {
                c.sources_missing += 1;
                c.most_missing = c.most_missing.max(missed);
            }
        }
        c
    }

    /// The current list of agent `a`.
    pub(crate) fn list(&self, a: usize) -> Arc<Vec<u32>> {
        self.lists[a].lock().clone()
    }

    /// Agents whose current list holds an agent of `node`, with those targets.
    pub(crate) fn probers_of(&self, node: usize) -> Vec<(usize, usize)> {
        let mine = [
            agent_index(node, Network::Pod) as u32,
            agent_index(node, Network::Host) as u32,
        ];
        let mut out = Vec::new();
        for a in 0..self.agents {
            for &t in self.list(a).iter() {
                if mine.contains(&t) {
                    out.push((a, t as usize));
                }
            }
        }
        out
    }

    /// Notes a session error.
    pub(crate) fn error(&self, what: String) {
        self.session_errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock();
        if first.len() < 5 {
            first.push(what);
        }
    }
}

/// A report window of 10 probes around `rtt_us` (±20 %), as the agents' histograms hold them.
fn window(rtt_us: u64) -> v1::Histogram {
    let mut h = echomesh_proto::Histogram::new();
    for k in 0..10u64 {
        let us = rtt_us * (90 + 2 * k) / 100;
        h.record(std::time::Duration::from_micros(us));
    }
    v1::Histogram::from(&h)
}
