//! Generated clusters with known faults: the ground truth the diagnosis is measured against.
//!
//! Why in the library and not only in tests: the accuracy example (`cargo run --example
//! diagnose_accuracy`) prints the same precision and recall table the tests assert a floor on, from
//! the same generator. Randomness is a seeded SplitMix64, so every case is reproducible from its
//! seed and the crate needs no random-number dependency.

use std::collections::HashMap;
use std::sync::Arc;

use echomesh_proto::v1::{EdgeState, Network};

use super::model::{AgentObs, Diagnosis, Direction, EdgeObs, Kind, Snapshot};

/// A small seeded generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The node is off: edges towards it fail in every network, its agents are silent.
    NodeDown(usize),
    /// The node's pod network is broken (CNI): its pod edges fail both ways, host edges are fine.
    CniBroken(usize),
    /// Only edges towards (`In`) or from (`Out`) the node fail, in every network.
    OneWay(usize, Direction),
    /// The zone is cut from the other zones: every cross-border edge fails.
    ZonePartition(usize),
    /// One directed link fails (in every network), DOWN or lossy.
    BadLink(usize, usize),
    /// A flaky node: each of its edges (both ways, every network) is DEGRADED with probability
    /// `percent` / 100, the others stay UP.
    Flaky(usize, u8),
}

/// What the diagnosis should name for a fault.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Truth {
    /// Kind.
    pub kind: Kind,
    /// Node, zone or link source.
    pub subject: String,
    /// Link target.
    pub target: Option<String>,
    /// Checked only for one-way faults.
    pub direction: Option<Direction>,
}

/// A generated cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Nodes.
    pub nodes: usize,
    /// Zones (nodes are spread round-robin); 0 means zones unknown.
    pub zones: usize,
    /// Both pod and host agents (else host only).
    pub both_planes: bool,
    /// IPv4 and IPv6 edges (else IPv4 only).
    pub dual_stack: bool,
}

/// The node's name.
#[must_use]
pub fn node_name(i: usize) -> String {
    format!("node{i:02}")
}

/// The zone's name.
#[must_use]
pub fn zone_name(z: usize) -> String {
    format!("zone-{}", (b'a' + z as u8) as char)
}

impl Cluster {
    fn zone_of(&self, n: usize) -> Option<usize> {
        (self.zones > 0).then(|| n % self.zones)
    }

    /// The snapshot of this cluster with `faults` injected (and `gray` extra random lossy links,
    /// part of the truth too), and what the diagnosis should name.
    #[must_use]
    pub fn generate(&self, faults: &[Fault], rng: &mut Rng) -> (Snapshot, Vec<Truth>) {
        let names: Vec<Arc<str>> = (0..self.nodes).map(|i| Arc::from(node_name(i))).collect();
        let planes: &[Network] = if self.both_planes {
            &[Network::Pod, Network::Host]
        } else {
            &[Network::Host]
        };
        let families = if self.dual_stack { 2 } else { 1 };
        let now = 1_800_000_000_000u64;
        let mut snap = Snapshot::default();
        let mut truth = Vec::new();
        for f in faults {
            truth.push(match f {
                Fault::NodeDown(n) => Truth {
                    kind: Kind::Node,
                    subject: node_name(*n),
                    target: None,
                    direction: None,
                },
                Fault::CniBroken(n) => Truth {
                    kind: if self.both_planes {
                        Kind::PodNetwork
                    } else {
                        Kind::Node
                    },
                    subject: node_name(*n),
                    target: None,
                    direction: None,
                },
                Fault::OneWay(n, d) => Truth {
                    kind: Kind::Node,
                    subject: node_name(*n),
                    target: None,
                    direction: Some(*d),
                },
                Fault::ZonePartition(z) => Truth {
                    kind: Kind::Zone,
                    subject: zone_name(*z),
                    target: None,
                    direction: None,
                },
                Fault::BadLink(s, t) => Truth {
                    kind: Kind::Link,
                    subject: node_name(*s),
                    target: Some(node_name(*t)),
                    direction: None,
                },
                Fault::Flaky(n, _) => Truth {
                    kind: Kind::Node,
                    subject: node_name(*n),
                    target: None,
                    direction: None,
                },
            });
        }
        let silent = |n: usize| faults.contains(&Fault::NodeDown(n));
        // Lossy links get one loss figure each, so both families agree.
        let mut link_loss: HashMap<(usize, usize), (EdgeState, f64)> = HashMap::new();
        for f in faults {
            if let Fault::BadLink(s, t) = f {
                let st = if rng.unit() < 0.5 {
                    (EdgeState::Down, 100.0)
                } else {
                    (EdgeState::Degraded, 2.0 + 30.0 * rng.unit())
                };
                link_loss.insert((*s, *t), st);
            }
        }
        for &plane in planes {
            for s in 0..self.nodes {
                snap.agents.push(AgentObs {
                    node: names[s].clone(),
                    plane,
                    stale: silent(s),
                    expected_down: false,
                    last_report_unix_ms: now - if silent(s) { 90_000 } else { 1_000 },
                });
                for t in 0..self.nodes {
                    if s == t {
                        continue;
                    }
                    let mut state = (EdgeState::Up, 0.0);
                    for f in faults {
                        let hit = match *f {
                            Fault::NodeDown(n) => t == n,
                            Fault::CniBroken(n) => {
                                (plane == Network::Pod || !self.both_planes) && (s == n || t == n)
                            }
                            Fault::OneWay(n, Direction::In) => t == n,
                            Fault::OneWay(n, Direction::Out) => s == n,
                            Fault::OneWay(n, Direction::Both) => s == n || t == n,
                            Fault::ZonePartition(z) => {
                                (self.zone_of(s) == Some(z)) != (self.zone_of(t) == Some(z))
                            }
                            Fault::BadLink(..) => false,
                            Fault::Flaky(n, pct) => {
                                if (s == n || t == n)
                                    && rng.below(100) < usize::from(pct)
                                    && state.0 == EdgeState::Up
                                {
                                    state = (EdgeState::Degraded, 5.0 + 20.0 * rng.unit());
                                }
                                false
                            }
                        };
                        if hit {
                            state = (EdgeState::Down, 100.0);
                        }
                    }
                    if state.0 == EdgeState::Up
                        && let Some(&l) = link_loss.get(&(s, t))
                    {
                        state = l;
                    }
                    if silent(s) {
                        state = (EdgeState::Unknown, 0.0);
                    }
                    for _ in 0..families {
                        snap.edges.push(EdgeObs {
                            source: names[s].clone(),
                            target: names[t].clone(),
                            plane,
                            state: state.0,
                            loss_pct: state.1,
                            expected_down: false,
                            since_unix_ms: now - 60_000 - rng.below(60_000) as u64,
                        });
                    }
                }
            }
        }
        for (n, name) in names.iter().enumerate() {
            if let Some(z) = self.zone_of(n) {
                snap.zones.insert(name.clone(), Arc::from(zone_name(z)));
            }
        }
        (snap, truth)
    }
}

/// `count` random directed links between distinct nodes outside `avoid` (no repeats).
pub fn random_links(nodes: usize, count: usize, avoid: &[usize], rng: &mut Rng) -> Vec<Fault> {
    let mut out: Vec<Fault> = Vec::new();
    let mut guard = 0;
    while out.len() < count && guard < count * 100 {
        guard += 1;
        let (s, t) = (rng.below(nodes), rng.below(nodes));
        if s == t || avoid.contains(&s) || avoid.contains(&t) {
            continue;
        }
        let f = Fault::BadLink(s, t);
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// Matches a diagnosis against the truth: (correct culprits, culprits named, truths found,
/// truths).
#[must_use]
pub fn score(d: &Diagnosis, truth: &[Truth]) -> (usize, usize, usize, usize) {
    let matches = |t: &Truth, c: &super::model::Culprit| {
        c.kind == t.kind
            && *c.subject == *t.subject
            && c.target.as_deref() == t.target.as_deref()
            && t.direction.is_none_or(|d| d == c.direction)
    };
    let correct = d
        .culprits
        .iter()
        .filter(|c| truth.iter().any(|t| matches(t, c)))
        .count();
    let found = truth
        .iter()
        .filter(|t| d.culprits.iter().any(|c| matches(t, c)))
        .count();
    (correct, d.culprits.len(), found, truth.len())
}

/// The named fault patterns the tests and the accuracy example run.
pub const PATTERNS: [&str; 10] = [
    "node down",
    "cni broken",
    "one-way in",
    "one-way out",
    "zone partition",
    "single bad link",
    "gray loss",
    "several at once",
    "node down + gray",
    "flaky node",
];

/// One case of `pattern` on a cluster of 20 to 50 nodes in 3 zones, from `seed`.
#[must_use]
pub fn case(pattern: &str, seed: u64) -> (Snapshot, Vec<Truth>) {
    let mut rng = Rng::new(seed);
    let nodes = 20 + rng.below(31);
    let cluster = Cluster {
        nodes,
        zones: 3,
        both_planes: rng.below(4) != 0,
        dual_stack: rng.below(2) == 0,
    };
    let n = rng.below(nodes);
    let faults = match pattern {
        "node down" => vec![Fault::NodeDown(n)],
        "cni broken" => vec![Fault::CniBroken(n)],
        "one-way in" => vec![Fault::OneWay(n, Direction::In)],
        "one-way out" => vec![Fault::OneWay(n, Direction::Out)],
        "zone partition" => vec![Fault::ZonePartition(rng.below(3))],
        "single bad link" => random_links(nodes, 1, &[], &mut rng),
        "gray loss" => {
            let k = 3 + rng.below(nodes / 2);
            random_links(nodes, k, &[], &mut rng)
        }
        "node down + gray" => {
            let mut f = vec![Fault::NodeDown(n)];
            f.extend(random_links(
                nodes,
                3 + rng.below(nodes / 2),
                &[n],
                &mut rng,
            ));
            f
        }
        "flaky node" => vec![Fault::Flaky(n, 60 + rng.below(36) as u8)],
        _ => {
            let m = (n + 1 + rng.below(nodes - 1)) % nodes;
            let mut f = vec![Fault::NodeDown(n), Fault::CniBroken(m)];
            if cluster.both_planes {
                f.push(Fault::OneWay(
                    (m + 1 + rng.below(nodes - 2)) % nodes,
                    Direction::In,
                ));
            }
            f.retain(|x| !matches!(x, Fault::OneWay(k, _) if *k == n || *k == m));
            let avoid: Vec<usize> = f
                .iter()
                .filter_map(|x| match x {
                    Fault::NodeDown(k) | Fault::CniBroken(k) | Fault::OneWay(k, _) => Some(*k),
                    _ => None,
                })
                .collect();
            f.extend(random_links(nodes, 2 + rng.below(4), &avoid, &mut rng));
            f
        }
    };
    cluster.generate(&faults, &mut rng)
}
