//! The rule: which groups of failing edges name a culprit, and the greedy cover that picks the
//! fewest culprits explaining them.
//!
//! An edge is *measured* when it is UP, DEGRADED or DOWN, its source agent reports, and its target
//! is not expected down; it *fails* when DEGRADED or DOWN. Candidates:
//!
//! - a node in each of its networks (`node`), or in one of them (`pod-network`, `host-network`);
//! - a zone (when discovery knows zones): the edges that cross its border.
//!
//! A candidate qualifies in a direction (edges towards it, edges from it) when at least
//! `threshold` (half) of its measured edges in that direction fail; a node candidate needs a
//! qualifying direction in every network it covers, which is what tells a broken pod network
//! (host edges fine) from a broken node. It also needs `min_failing` failing edges with
//! `min_peers` different peers, and its failing fraction must be at least `background_factor`
//! times the failing fraction of every edge not touching it, so random gray loss over many links
//! never adds up to a node: each node sees the same small fraction as the rest of the cluster.
//!
//! Once a node qualifies, it also explains its failing edges in a direction below the threshold
//! when that direction's failing fraction stands out (at least `background_factor` times the
//! background and a quarter): a flaky node that loses 60 % of its edges, unevenly, is one node, not
//! a handful of links.
//!
//! The cover is greedy set cover (the classic ln(n)-approximation of the smallest cover): take
//! the qualifying candidate explaining the most failing edges not yet explained (ties: the higher
//! failing fraction, then node before network before zone), until no candidate explains
//! `min_failing` more. Failing edges left over are single directed links. Silent agents on a
//! blamed node or zone are folded into that culprit; the others are `agent-silent`, or one
//! `view-stale` when at least half the agents are silent at once.
//!
//! Confidence: a group's failing fraction times one minus the background fraction; a link's is one
//! minus the background fraction (times 0.6 when only DEGRADED, not DOWN); a silent agent's is 1.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use echomesh_proto::v1::{EdgeState, Network};

use super::model::{Culprit, Diagnosis, Direction, Kind, Snapshot};

/// The rule's knobs; [`Settings::default`] is what the aggregator uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The failing fraction at which a direction of a node or zone qualifies.
    pub threshold: f64,
    /// Failing edges a node or zone needs (and the least a greedy pick must add).
    pub min_failing: u32,
    /// Different peers those failing edges must reach.
    pub min_peers: u32,
    /// How many times the background failing fraction a candidate's fraction must be.
    pub background_factor: f64,
    /// The share of agents silent at once that makes it the aggregator's view, not the nodes.
    pub stale_share: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_failing: 3,
            min_peers: 2,
            background_factor: 2.0,
            stale_share: 0.5,
        }
    }
}

/// One measured edge: indices into the snapshot's edges and the node table.
#[derive(Clone, Copy)]
struct Obs {
    edge: usize,
    src: u32,
    dst: u32,
    plane: usize,
    fail: bool,
}

/// Measured and failing edges towards (`in`) and from (`out`) a node or zone.
#[derive(Clone, Copy, Default)]
struct Tally {
    in_total: u32,
    in_fail: u32,
    out_total: u32,
    out_fail: u32,
}

/// A node or zone candidate.
struct Cand {
    kind: Kind,
    /// Node id or zone id.
    id: u32,
    plane: Network,
    /// Per plane (pod, host): does the direction in / out qualify.
    dirs: [(bool, bool); 2],
    direction: Direction,
    failing: u32,
    total: u32,
    frac: f64,
    incident_fail: u32,
    incident_total: u32,
    covered: Vec<usize>,
}

const PLANES: [Network; 2] = [Network::Pod, Network::Host];

fn plane_index(n: Network) -> usize {
    usize::from(n == Network::Host)
}

fn frac(f: u32, t: u32) -> f64 {
    if t == 0 {
        0.0
    } else {
        f64::from(f) / f64::from(t)
    }
}

/// The verdict on `snap`.
#[must_use]
pub fn diagnose(snap: &Snapshot, s: &Settings) -> Diagnosis {
    let mut d = Diagnosis::default();
    let mut names: Vec<Arc<str>> = Vec::new();
    let mut ids: HashMap<Arc<str>, u32> = HashMap::new();
    let mut id_of = |n: &Arc<str>, names: &mut Vec<Arc<str>>| -> u32 {
        *ids.entry(n.clone()).or_insert_with(|| {
            names.push(n.clone());
            (names.len() - 1) as u32
        })
    };
    for a in &snap.agents {
        id_of(&a.node, &mut names);
    }
    let silent_sources: HashSet<(&str, Network)> = snap
        .agents
        .iter()
        .filter(|a| a.stale)
        .map(|a| (&*a.node, a.plane))
        .collect();
    let mut obs = Vec::with_capacity(snap.edges.len());
    for (i, e) in snap.edges.iter().enumerate() {
        let src = id_of(&e.source, &mut names);
        let dst = id_of(&e.target, &mut names);
        d.edges += 1;
        let fail = match e.state {
            EdgeState::Up => {
                d.edges_up += 1;
                false
            }
            EdgeState::Degraded | EdgeState::Down => true,
            EdgeState::Unknown | EdgeState::Unspecified => {
                d.unknown += 1;
                continue;
            }
        };
        if e.expected_down {
            d.expected_down += u32::from(fail);
            continue;
        }
        // A silent agent's edges say nothing now; an edge from a node to its own other network
        // (a pod agent probing its node's host address) says nothing about the node's peers.
        if silent_sources.contains(&(&*e.source, e.plane)) || src == dst {
            continue;
        }
        obs.push(Obs {
            edge: i,
            src,
            dst,
            plane: plane_index(e.plane),
            fail,
        });
    }
    d.nodes = names.len() as u32;
    d.failing = obs.iter().filter(|o| o.fail).count() as u32;
    let obs_total = obs.len() as u32;

    // Tallies per node and plane, and per zone over its cross-border edges.
    let mut zone_names: Vec<Arc<str>> = Vec::new();
    let mut zone_ids: HashMap<Arc<str>, u32> = HashMap::new();
    let node_zone: Vec<Option<u32>> = names
        .iter()
        .map(|n| {
            snap.zones.get(n).map(|z| {
                *zone_ids.entry(z.clone()).or_insert_with(|| {
                    zone_names.push(z.clone());
                    (zone_names.len() - 1) as u32
                })
            })
        })
        .collect();
    let mut node_t = vec![[Tally::default(); 2]; names.len()];
    let mut zone_t = vec![Tally::default(); zone_names.len()];
    for o in &obs {
        let f = u32::from(o.fail);
        let t = &mut node_t[o.src as usize][o.plane];
        t.out_total += 1;
        t.out_fail += f;
        let t = &mut node_t[o.dst as usize][o.plane];
        t.in_total += 1;
        t.in_fail += f;
        if let (Some(zs), Some(zd)) = (node_zone[o.src as usize], node_zone[o.dst as usize])
            && zs != zd
        {
            zone_t[zs as usize].out_total += 1;
            zone_t[zs as usize].out_fail += f;
            zone_t[zd as usize].in_total += 1;
            zone_t[zd as usize].in_fail += f;
        }
    }
    let qualifies = |f: u32, t: u32| f > 0 && f64::from(f) >= s.threshold * f64::from(t);

    // Candidates.
    let mut cands: Vec<Cand> = Vec::new();
    for (n, t) in node_t.iter().enumerate() {
        let present: Vec<usize> = (0..2)
            .filter(|&p| t[p].in_total + t[p].out_total > 0)
            .collect();
        let options: Vec<(Kind, Vec<usize>)> = match present.len() {
            2 => vec![
                (Kind::Node, vec![0, 1]),
                (Kind::PodNetwork, vec![0]),
                (Kind::HostNetwork, vec![1]),
            ],
            1 => vec![(Kind::Node, present.clone())],
            _ => continue,
        };
        for (kind, planes) in options {
            let mut c = Cand {
                kind,
                id: n as u32,
                plane: if planes.len() == 1 {
                    PLANES[planes[0]]
                } else {
                    Network::Unspecified
                },
                dirs: [(false, false); 2],
                direction: Direction::Both,
                failing: 0,
                total: 0,
                frac: 0.0,
                incident_fail: 0,
                incident_total: 0,
                covered: Vec::new(),
            };
            for &p in &planes {
                c.incident_fail += t[p].in_fail + t[p].out_fail;
                c.incident_total += t[p].in_total + t[p].out_total;
            }
            // A direction that does not reach the threshold is still this node's when its failing
            // fraction stands out from the background (a flaky node): its edges are explained by
            // the node, not named as links one by one.
            let bg = frac(
                d.failing.saturating_sub(c.incident_fail),
                obs_total.saturating_sub(c.incident_total),
            );
            let elevated = |f: u32, t: u32| {
                f > 0 && frac(f, t) >= (s.background_factor * bg).max(s.threshold / 2.0)
            };
            let ok = planes.iter().all(|&p| {
                qualifies(t[p].in_fail, t[p].in_total) || qualifies(t[p].out_fail, t[p].out_total)
            });
            if !ok {
                continue;
            }
            let mut dir = None;
            for &p in &planes {
                let t = t[p];
                let (i, o) = (
                    elevated(t.in_fail, t.in_total),
                    elevated(t.out_fail, t.out_total),
                );
                c.dirs[p] = (i, o);
                if i {
                    dir = Some(Direction::union(dir, Direction::In));
                    c.failing += t.in_fail;
                    c.total += t.in_total;
                }
                if o {
                    dir = Some(Direction::union(dir, Direction::Out));
                    c.failing += t.out_fail;
                    c.total += t.out_total;
                }
            }
            if let Some(dir) = dir {
                c.direction = dir;
                cands.push(c);
            }
        }
    }
    let node_cands = cands.len();
    if zone_names.len() >= 2 {
        for (z, t) in zone_t.iter().enumerate() {
            let (i, o) = (
                qualifies(t.in_fail, t.in_total),
                qualifies(t.out_fail, t.out_total),
            );
            let mut dir = None;
            let (mut failing, mut total) = (0, 0);
            if i {
                dir = Some(Direction::In);
                failing += t.in_fail;
                total += t.in_total;
            }
            if o {
                dir = Some(Direction::union(dir, Direction::Out));
                failing += t.out_fail;
                total += t.out_total;
            }
            if let Some(direction) = dir {
                cands.push(Cand {
                    kind: Kind::Zone,
                    id: z as u32,
                    plane: Network::Unspecified,
                    dirs: [(i, o); 2],
                    direction,
                    failing,
                    total,
                    frac: 0.0,
                    incident_fail: t.in_fail + t.out_fail,
                    incident_total: t.in_total + t.out_total,
                    covered: Vec::new(),
                });
            }
        }
    }

    // Which failing edges each candidate covers.
    let mut by_node: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut by_zone: HashMap<u32, Vec<usize>> = HashMap::new();
    for (ci, c) in cands.iter().enumerate() {
        if ci < node_cands {
            by_node.entry(c.id).or_default().push(ci);
        } else {
            by_zone.entry(c.id).or_default().push(ci);
        }
    }
    for (oi, o) in obs.iter().enumerate() {
        if !o.fail {
            continue;
        }
        for &ci in by_node.get(&o.src).into_iter().flatten() {
            if cands[ci].dirs[o.plane].1 {
                cands[ci].covered.push(oi);
            }
        }
        for &ci in by_node.get(&o.dst).into_iter().flatten() {
            if cands[ci].dirs[o.plane].0 {
                cands[ci].covered.push(oi);
            }
        }
        if let (Some(zs), Some(zd)) = (node_zone[o.src as usize], node_zone[o.dst as usize])
            && zs != zd
        {
            for &ci in by_zone.get(&zs).into_iter().flatten() {
                if cands[ci].dirs[0].1 {
                    cands[ci].covered.push(oi);
                }
            }
            for &ci in by_zone.get(&zd).into_iter().flatten() {
                if cands[ci].dirs[0].0 {
                    cands[ci].covered.push(oi);
                }
            }
        }
    }

    // Evidence and background checks.
    let mut qualified: Vec<Cand> = Vec::new();
    for mut c in cands {
        if c.failing < s.min_failing {
            continue;
        }
        let peers: HashSet<u32> = c
            .covered
            .iter()
            .map(|&oi| {
                let o = obs[oi];
                let inside = |n: u32| {
                    if c.kind == Kind::Zone {
                        node_zone[n as usize] == Some(c.id)
                    } else {
                        n == c.id
                    }
                };
                if inside(o.src) { o.dst } else { o.src }
            })
            .collect();
        if (peers.len() as u32) < s.min_peers {
            continue;
        }
        c.frac = frac(c.failing, c.total);
        let bg = frac(
            d.failing.saturating_sub(c.incident_fail),
            obs_total.saturating_sub(c.incident_total),
        );
        if c.frac < s.background_factor * bg {
            continue;
        }
        qualified.push(c);
    }

    // Greedy cover.
    let mut covered = vec![false; obs.len()];
    let rank = |k: Kind| match k {
        Kind::Node => 0,
        Kind::PodNetwork | Kind::HostNetwork => 1,
        _ => 2,
    };
    let mut groups: Vec<Culprit> = Vec::new();
    let mut blamed_zones: Vec<(usize, u32)> = Vec::new();
    loop {
        let best = qualified
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let gain = c.covered.iter().filter(|&&oi| !covered[oi]).count() as u32;
                (i, gain)
            })
            .max_by(|&(a, ga), &(b, gb)| {
                let (ca, cb) = (&qualified[a], &qualified[b]);
                ga.cmp(&gb)
                    .then(ca.frac.total_cmp(&cb.frac))
                    .then(rank(cb.kind).cmp(&rank(ca.kind)))
                    .then(b.cmp(&a))
            });
        let Some((i, gain)) = best else { break };
        if gain < s.min_failing.max(1) {
            break;
        }
        let c = qualified.swap_remove(i);
        let mut since = u64::MAX;
        for &oi in &c.covered {
            covered[oi] = true;
            since = since.min(snap.edges[obs[oi].edge].since_unix_ms);
        }
        let bg = frac(
            d.failing.saturating_sub(c.incident_fail),
            obs_total.saturating_sub(c.incident_total),
        );
        let subject = if c.kind == Kind::Zone {
            blamed_zones.push((groups.len(), c.id));
            zone_names[c.id as usize].clone()
        } else {
            names[c.id as usize].clone()
        };
        d.explained += gain;
        groups.push(Culprit {
            kind: c.kind,
            subject,
            target: None,
            plane: c.plane,
            direction: c.direction,
            failing: c.failing,
            total: c.total,
            explained: gain,
            confidence: (c.frac * (1.0 - bg)).clamp(0.0, 1.0),
            since_unix_ms: if since == u64::MAX { 0 } else { since },
            agent_silent: false,
        });
    }

    // Silent agents: folded into a blamed node or zone, else named.
    let mut silent_left: Vec<&super::model::AgentObs> = Vec::new();
    for a in snap.agents.iter().filter(|a| a.stale && !a.expected_down) {
        let n = ids.get(&a.node).copied();
        if let Some(gi) = groups.iter().position(|g| {
            g.kind != Kind::Zone
                && g.subject == a.node
                && (g.plane == Network::Unspecified || g.plane == a.plane)
        }) {
            groups[gi].agent_silent = true;
            continue;
        }
        let zone = n.and_then(|n| node_zone[n as usize]);
        if let Some(&(gi, _)) = blamed_zones.iter().find(|(_, z)| Some(*z) == zone) {
            groups[gi].agent_silent = true;
            continue;
        }
        silent_left.push(a);
    }
    let watched = snap.agents.iter().filter(|a| !a.expected_down).count() as u32;
    let mut silent: Vec<Culprit> = Vec::new();
    let left = silent_left.len() as u32;
    if left >= 2 && f64::from(left) >= s.stale_share * f64::from(watched) {
        silent.push(Culprit {
            kind: Kind::ViewStale,
            subject: Arc::from(""),
            target: None,
            plane: Network::Unspecified,
            direction: Direction::Out,
            failing: left,
            total: watched,
            explained: 0,
            confidence: frac(left, watched),
            since_unix_ms: silent_left
                .iter()
                .map(|a| a.last_report_unix_ms)
                .min()
                .unwrap_or(0),
            agent_silent: true,
        });
    } else {
        let mut per_node: BTreeMap<&str, (u32, Network, u64)> = BTreeMap::new();
        for a in &silent_left {
            let e = per_node
                .entry(&a.node)
                .or_insert((0, a.plane, a.last_report_unix_ms));
            e.0 += 1;
            if e.1 != a.plane {
                e.1 = Network::Unspecified;
            }
            e.2 = e.2.min(a.last_report_unix_ms);
        }
        for (node, (n, plane, since)) in per_node {
            let total = snap.agents.iter().filter(|a| &*a.node == node).count() as u32;
            silent.push(Culprit {
                kind: Kind::AgentSilent,
                subject: Arc::from(node),
                target: None,
                plane,
                direction: Direction::Out,
                failing: n,
                total,
                explained: 0,
                confidence: 1.0,
                since_unix_ms: since,
                agent_silent: true,
            });
        }
    }

    // Links: the failing edges no group explains.
    struct Link {
        fail: u32,
        total: u32,
        planes: [bool; 2],
        down: bool,
        since: u64,
    }
    let mut links: BTreeMap<(u32, u32), Link> = BTreeMap::new();
    for (oi, o) in obs.iter().enumerate() {
        if o.fail && !covered[oi] {
            let e = &snap.edges[o.edge];
            let l = links.entry((o.src, o.dst)).or_insert(Link {
                fail: 0,
                total: 0,
                planes: [false; 2],
                down: false,
                since: u64::MAX,
            });
            l.fail += 1;
            l.planes[o.plane] = true;
            l.down |= e.state == EdgeState::Down;
            l.since = l.since.min(e.since_unix_ms);
        }
    }
    if !links.is_empty() {
        for o in &obs {
            if let Some(l) = links.get_mut(&(o.src, o.dst)) {
                l.total += 1;
            }
        }
    }
    let mut link_culprits: Vec<Culprit> = links
        .into_iter()
        .map(|((src, dst), l)| {
            let bg = frac(
                d.failing.saturating_sub(l.fail),
                obs_total.saturating_sub(l.total),
            );
            d.explained += l.fail;
            Culprit {
                kind: Kind::Link,
                subject: names[src as usize].clone(),
                target: Some(names[dst as usize].clone()),
                plane: match l.planes {
                    [true, false] => Network::Pod,
                    [false, true] => Network::Host,
                    _ => Network::Unspecified,
                },
                direction: Direction::Out,
                failing: l.fail,
                total: l.total,
                explained: l.fail,
                confidence: ((1.0 - bg) * if l.down { 1.0 } else { 0.6 }).clamp(0.0, 1.0),
                since_unix_ms: l.since,
                agent_silent: false,
            }
        })
        .collect();
    link_culprits.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(b.failing.cmp(&a.failing))
            .then(a.subject.cmp(&b.subject))
            .then(a.target.cmp(&b.target))
    });
    d.culprits = groups;
    d.culprits.extend(silent);
    d.culprits.extend(link_culprits);
    d
}
