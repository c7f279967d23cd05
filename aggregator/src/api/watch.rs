//! `WatchEvents`: state changes as they happen, optionally after a snapshot of every edge.
//!
//! Why rendered here and not where events are made: ingest emits compact events (an `Arc` clone
//! and a target id), and each subscriber's own task turns them into wire events with names and
//! addresses, so a burst of transitions costs ingest cheap sends, not string builds.

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
use crate::graph::{EdgeRecord, Graph, GraphEvent};

/// The stream of one WatchEvents call.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<v1::Event, Status>> + Send>>;

impl Query {
    /// Subscribes and spawns the task that feeds the stream until shutdown.
    pub(super) fn watch(&self, snapshot: bool) -> Result<EventStream, Status> {
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
                () = forward(graph, sub, tx.clone(), snapshot) => {}
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

async fn forward(
    graph: Arc<Graph>,
    mut sub: Subscription,
    tx: mpsc::Sender<Result<v1::Event, Status>>,
    snapshot: bool,
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
        loop {
            let ev = match sub.rx.recv().await {
                Ok(ev) => render_event(&graph, ev),
                Err(broadcast::error::RecvError::Lagged(n)) => v1::Event {
                    kind: Kind::Lagged as i32,
                    at_unix_ms: unix_ms(),
                    missed: n,
                    message: format!("subscriber fell behind and missed {n} events"),
                    ..v1::Event::default()
                },
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(ev)).await.is_err() {
                return;
            }
        }
    }
}
