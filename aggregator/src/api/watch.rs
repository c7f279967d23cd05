//! `WatchEvents`: state changes as they happen, optionally after a snapshot of every edge.
//!
//! Why rendered here and not where events are made: ingest emits compact events (an `Arc` clone
//! and a target id), and each subscriber's own task turns them into wire events with names and
//! addresses, so a burst of transitions costs ingest cheap sends, not string builds. A storm of
//! transitions (a zone going down) goes out counted per zone pair ([`coalesce`]).

pub mod coalesce;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use echomesh_proto::v1::{self, event::Kind};
use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::Query;
use super::view::{self, Detail};
use crate::graph::events::{Subscription, unix_ms};
use crate::graph::{AgentKey, EdgeRecord, Graph, GraphEvent};
use coalesce::{Coalescer, Group, Out};

/// The stream of one WatchEvents call.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<v1::Event, Status>> + Send>>;

impl Query {
    /// Subscribes and spawns the task that feeds the stream until shutdown.
    pub(super) fn watch(&self, snapshot: bool, every_change: bool) -> Result<EventStream, Status> {
        let sub = self
            .graph
            .events
            .subscribe()
            .ok_or_else(|| Status::resource_exhausted("too many WatchEvents subscribers"))?;
        let (tx, rx) = mpsc::channel(1024);
        let graph = self.graph.clone();
        let closing = self.ingest.closing();
        tokio::spawn(async move {
            tokio::select! {
                () = closing => {
                    let _ = tx.try_send(Err(Status::unavailable("aggregator shutting down")));
                }
                () = forward(graph, sub, tx.clone(), snapshot, every_change) => {}
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

/// Turns a compact ingest event into the wire form (names, addresses).
fn render_event(graph: &Graph, ev: GraphEvent) -> v1::Event {
    match ev {
        GraphEvent::Edge {
            src,
            target,
            from,
            to,
            at_ms,
        } => {
            let ep = graph.endpoint(target);
            v1::Event {
                kind: Kind::EdgeState as i32,
                at_unix_ms: at_ms,
                source_node: src.node.to_string(),
                source_network: src.network as i32,
                target_node: ep.as_ref().map(|e| e.node.to_string()).unwrap_or_default(),
                expected_down: ep.as_ref().is_some_and(|e| graph.is_expected_down(&e.node)),
                target_network: ep.as_ref().map_or(0, |e| e.network as i32),
                target_address: ep.map(|e| e.addr.to_string()).unwrap_or_default(),
                from: from as i32,
                to: to as i32,
                ..v1::Event::default()
            }
        }
        GraphEvent::Agent {
            kind,
            src,
            message,
            at_ms,
        } => v1::Event {
            kind: kind as i32,
            at_unix_ms: at_ms,
            source_node: src.node.to_string(),
            source_network: src.network as i32,
            message,
            ..v1::Event::default()
        },
    }
}

/// Every event as its own, as it arrives (`every_change`).
async fn every_one(
    graph: &Graph,
    sub: &mut Subscription,
    tx: &mpsc::Sender<Result<v1::Event, Status>>,
) {
    loop {
        let ev = match sub.rx.recv().await {
            Ok(ev) => render_event(graph, ev),
            Err(broadcast::error::RecvError::Lagged(n)) => lagged(n),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if tx.send(Ok(ev)).await.is_err() {
            return;
        }
    }
}

fn lagged(n: u64) -> v1::Event {
    v1::Event {
        kind: Kind::Lagged as i32,
        at_unix_ms: unix_ms(),
        missed: n,
        message: format!("subscriber fell behind and missed {n} events"),
        ..v1::Event::default()
    }
}

/// The zones of an edge's source node and of its target's node ("" when unknown).
fn zones_of(
    graph: &Graph,
    zones: &BTreeMap<Arc<str>, Arc<str>>,
    src: &AgentKey,
    target: u64,
) -> (Arc<str>, Arc<str>) {
    let zone = |n: &str| zones.get(n).cloned().unwrap_or_else(|| Arc::from(""));
    let dst = graph
        .endpoint(target)
        .map_or_else(|| Arc::from(""), |e| zone(&e.node));
    (zone(&src.node), dst)
}

/// A counted group as a `KIND_EDGE_STATES` event, with its sentence.
fn render_group(g: &Group) -> v1::Event {
    let name = |s: i32| {
        v1::EdgeState::try_from(s).map_or("?", |s| match s {
            v1::EdgeState::Up => "UP",
            v1::EdgeState::Degraded => "DEGRADED",
            v1::EdgeState::Down => "DOWN",
            v1::EdgeState::Unknown | v1::EdgeState::Unspecified => "UNKNOWN",
        })
    };
    let zone = |z: &str| {
        if z.is_empty() {
            "-".to_string()
        } else {
            z.to_string()
        }
    };
    let why = if g.storm {
        format!(
            "a storm: more than {} changes a second, counted per zone pair",
            coalesce::STORM_PER_SEC
        )
    } else {
        "first measurements of new or resumed probes".to_string()
    };
    v1::Event {
        kind: Kind::EdgeStates as i32,
        at_unix_ms: g.at_ms,
        from: g.key.from,
        to: g.key.to,
        edges: g.edges,
        source_zone: g.key.source_zone.to_string(),
        target_zone: g.key.target_zone.to_string(),
        message: format!(
            "{} edges went {} -> {} from zone {} to zone {} ({why})",
            g.edges,
            name(g.key.from),
            name(g.key.to),
            zone(&g.key.source_zone),
            zone(&g.key.target_zone)
        ),
        ..v1::Event::default()
    }
}

async fn forward(
    graph: Arc<Graph>,
    mut sub: Subscription,
    tx: mpsc::Sender<Result<v1::Event, Status>>,
    snapshot: bool,
    every_change: bool,
) {
    {
        if snapshot {
            let now = graph.now();
            for a in graph.agents() {
                let recs: Vec<EdgeRecord> = a.slab.lock().records.clone();
                for rec in recs {
                    let e = view::edge(&graph, &a.key, &rec, now, Detail::Summary);
                    let ev = v1::Event {
                        kind: Kind::EdgeState as i32,
                        at_unix_ms: unix_ms(),
                        source_node: e.source_node,
                        source_network: e.source_network,
                        target_node: e.target_node,
                        target_network: e.target_network,
                        target_address: e.target_address,
                        from: e.state,
                        to: e.state,
                        message: "snapshot".into(),
                        expected_down: e.expected_down,
                        ..v1::Event::default()
                    };
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
            }
            let done = v1::Event {
                kind: Kind::SnapshotDone as i32,
                at_unix_ms: unix_ms(),
                ..v1::Event::default()
            };
            if tx.send(Ok(done)).await.is_err() {
                return;
            }
        }
        if every_change {
            return every_one(&graph, &mut sub, &tx).await;
        }
        let mut co = Coalescer::new(tokio::time::Instant::now());
        let mut tick = tokio::time::interval(coalesce::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut zones = graph.node_zones();
        let mut zones_at = tokio::time::Instant::now();
        loop {
            let sent = tokio::select! {
                r = sub.rx.recv() => match r {
                    Ok(ev) => {
                        co.push(ev, &|src: &AgentKey, target: u64| zones_of(&graph, &zones, src, target));
                        continue;
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => tx.send(Ok(lagged(n))).await,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                now = tick.tick() => {
                    if now.duration_since(zones_at) >= coalesce::FLUSH {
                        zones = graph.node_zones();
                        zones_at = now;
                    }
                    let mut r = Ok(());
                    for out in co.tick(now) {
                        let ev = match out {
                            Out::One(ev) => render_event(&graph, ev),
                            Out::Counted(g) => render_group(&g),
                        };
                        r = tx.send(Ok(ev)).await;
                        if r.is_err() {
                            break;
                        }
                    }
                    r
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }
}
