//! Storm coalescing for `WatchEvents`: a zone going down is a handful of events with counts, not
//! one line per edge.
//!
//! Why per subscriber and on a short hold: ingest emits one compact event per edge change and
//! must never wait (see [`crate::graph::events`]); whether to print them one by one is a choice
//! of how to show them. Each subscriber holds edge changes for one [`TICK`] and sends them one by
//! one, in order, while at most [`STORM_PER_SEC`] arrived within the current second (a node of a
//! 13-node cluster going down still reads edge by edge). Beyond that a *storm* begins: the
//! changes held and those that follow are counted per (source zone, target zone, from, to)
//! and each count goes out once a second as one `KIND_EDGE_STATES` event, until a whole second
//! passes with at most [`STORM_PER_SEC`] changes. Edges that come UP from UNKNOWN — the first
//! measurements of a new or resumed probe, which the budget policy's rotation makes every epoch
//! for every agent — are always counted, never listed one by one. Agent events and lag notices
//! are never coalesced. A subscriber that asks for `every_change` skips all of this.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::v1::EdgeState;
use tokio::time::Instant;

use crate::graph::{AgentKey, GraphEvent};

/// How long edge changes are held before going out one by one.
pub const TICK: Duration = Duration::from_millis(250);
/// More edge changes than this in a second is a storm.
pub const STORM_PER_SEC: usize = 100;
/// How often the counts go out.
pub const FLUSH: Duration = Duration::from_secs(1);

/// What a group of edge changes has in common.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// Zone of the source nodes ("" unknown).
    pub source_zone: Arc<str>,
    /// Zone of the target nodes ("" unknown).
    pub target_zone: Arc<str>,
    /// Previous state.
    pub from: i32,
    /// New state.
    pub to: i32,
}

/// A counted group, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// What its edges have in common.
    pub key: GroupKey,
    /// How many edge changes.
    pub edges: u64,
    /// The latest change's wall clock.
    pub at_ms: u64,
    /// Counted because of a storm (not only first measurements).
    pub storm: bool,
}

/// What a subscriber sends.
#[derive(Debug, Clone)]
pub enum Out {
    /// One event as ingest emitted it.
    One(GraphEvent),
    /// Many edge changes, counted.
    Counted(Group),
}

/// One subscriber's coalescing state (pure: the caller brings the clock and the zones).
#[derive(Debug)]
pub struct Coalescer {
    pending: Vec<GraphEvent>,
    groups: BTreeMap<GroupKey, (u64, u64)>,
    storm: bool,
    storm_in_groups: bool,
    second_start: Instant,
    second_count: usize,
    last_flush: Instant,
}

impl Coalescer {
    /// A coalescer whose first second starts at `now`.
    #[must_use]
    pub fn new(now: Instant) -> Self {
        Self {
            pending: Vec::new(),
            groups: BTreeMap::new(),
            storm: false,
            storm_in_groups: false,
            second_start: now,
            second_count: 0,
            last_flush: now,
        }
    }

    /// Takes one event; `zones` names the zones of an edge's source and target.
    pub fn push(
        &mut self,
        ev: GraphEvent,
        zones: &impl Fn(&AgentKey, u64) -> (Arc<str>, Arc<str>),
    ) {
        let GraphEvent::Edge {
            src,
            target,
            from,
            to,
            at_ms,
        } = &ev
        else {
            self.pending.push(ev);
            return;
        };
        if *from == EdgeState::Unknown && *to == EdgeState::Up {
            self.count(zones(src, *target), *from, *to, *at_ms);
            return;
        }
        self.second_count += 1;
        if self.storm {
            self.storm_in_groups = true;
            self.count(zones(src, *target), *from, *to, *at_ms);
            return;
        }
        self.pending.push(ev);
        if self.second_count > STORM_PER_SEC {
            self.start_storm(zones);
        }
    }

    /// What to send at `now` (call every [`TICK`]).
    pub fn tick(&mut self, now: Instant) -> Vec<Out> {
        if now.duration_since(self.second_start) >= FLUSH {
            if self.second_count <= STORM_PER_SEC {
                self.storm = false;
            }
            self.second_start = now;
            self.second_count = 0;
        }
        let mut out: Vec<Out> = self.pending.drain(..).map(Out::One).collect();
        if now.duration_since(self.last_flush) >= FLUSH {
            self.last_flush = now;
            let storm = std::mem::take(&mut self.storm_in_groups);
            out.extend(std::mem::take(&mut self.groups).into_iter().map(
                |(key, (edges, at_ms))| {
                    let first =
                        key.from == EdgeState::Unknown as i32 && key.to == EdgeState::Up as i32;
                    Out::Counted(Group {
                        storm: storm && !first,
                        key,
                        edges,
                        at_ms,
                    })
                },
            ));
        }
        out
    }

    /// Whether changes are being counted instead of listed.
    #[must_use]
    pub fn in_storm(&self) -> bool {
        self.storm
    }

    fn start_storm(&mut self, zones: &impl Fn(&AgentKey, u64) -> (Arc<str>, Arc<str>)) {
        self.storm = true;
        self.storm_in_groups = true;
        let held = std::mem::take(&mut self.pending);
        for ev in held {
            match ev {
                GraphEvent::Edge {
                    src,
                    target,
                    from,
                    to,
                    at_ms,
                } => self.count(zones(&src, target), from, to, at_ms),
                other => self.pending.push(other),
            }
        }
    }

    fn count(&mut self, (s, t): (Arc<str>, Arc<str>), from: EdgeState, to: EdgeState, at: u64) {
        let key = GroupKey {
            source_zone: s,
            target_zone: t,
            from: from as i32,
            to: to as i32,
        };
        let g = self.groups.entry(key).or_insert((0, 0));
        g.0 += 1;
        g.1 = g.1.max(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echomesh_proto::v1::Network;

    fn edge(node: usize, from: EdgeState, to: EdgeState) -> GraphEvent {
        GraphEvent::Edge {
            src: AgentKey {
                node: format!("n{node}").into(),
                network: Network::Pod,
            },
            target: node as u64 + 1,
            from,
            to,
            at_ms: 1_000 + node as u64,
        }
    }

    /// Nodes below 500 are in zone a, the rest in zone b; target = source + 1.
    fn zones(src: &AgentKey, target: u64) -> (Arc<str>, Arc<str>) {
        let n: usize = src.node[1..].parse().unwrap_or(0);
        let z = |i: usize| Arc::from(if i < 500 { "a" } else { "b" });
        (z(n), z(target as usize))
    }

    fn counted(out: &[Out]) -> Vec<&Group> {
        out.iter()
            .filter_map(|o| match o {
                Out::Counted(g) => Some(g),
                Out::One(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_few_changes_go_out_one_by_one_after_one_tick() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(t0);
        for n in 0..3 {
            c.push(edge(n, EdgeState::Up, EdgeState::Down), &zones);
        }
        let out = c.tick(t0 + TICK);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|o| matches!(o, Out::One(_))));
        assert!(!c.in_storm());
    }

    #[test]
    fn first_measurements_are_counted_not_listed() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(t0);
        for n in 0..50 {
            c.push(edge(n, EdgeState::Unknown, EdgeState::Up), &zones);
        }
        assert!(
            c.tick(t0 + TICK).is_empty(),
            "held until the second is over"
        );
        let out = c.tick(t0 + FLUSH);
        let g = counted(&out);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].edges, 50);
        assert!(!g[0].storm);
        assert!(!c.in_storm(), "first measurements do not make a storm");
    }
}
