//! `WatchEvents` under paused time: a zone of 500 nodes going down is a handful of counted
//! events, a single change is still one line.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::v1::{self, EdgeState, Network, event::Kind};
use tokio::sync::mpsc;

use super::forward;
use crate::graph::{AgentInfo, AgentKey, EventHub, Graph, GraphConfig, GraphEvent, endpoint_id};

const ZONE: usize = 500;

fn key(i: usize) -> AgentKey {
    AgentKey {
        node: format!("node-{i:04}").into(),
        network: Network::Pod,
    }
}

/// 2 × [`ZONE`] nodes in zones a and b, every agent announcing its address.
fn graph() -> (Arc<Graph>, Vec<u64>) {
    let g = Arc::new(Graph::new(
        GraphConfig::default(),
        EventHub::new(1 << 16, 2),
    ));
    let mut ids = Vec::new();
    for i in 0..2 * ZONE {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8));
        g.upsert_agent(
            key(i),
            AgentInfo {
                addresses: vec![ip],
                connected: true,
                ..AgentInfo::default()
            },
        );
        ids.push(endpoint_id(&key(i).node, Network::Pod, ip));
    }
    g.set_node_zones(
        (0..2 * ZONE)
            .map(|i| (key(i).node, Arc::from(if i < ZONE { "a" } else { "b" })))
            .collect(),
    );
    (g, ids)
}

fn down(g: &Graph, src: usize, target: u64) {
    g.events.send(GraphEvent::Edge {
        src: key(src),
        target,
        from: EdgeState::Up,
        to: EdgeState::Down,
        at_ms: 1,
    });
}

async fn drain(rx: &mut mpsc::Receiver<Result<v1::Event, tonic::Status>>) -> Vec<v1::Event> {
    // Paused time: sleeping lets the forwarder's ticks run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        out.push(ev.expect("ok"));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_zone_going_down_is_a_handful_of_counted_events() {
    let (g, ids) = graph();
    let sub = g.events.subscribe().expect("subscriber");
    let (tx, mut rx) = mpsc::channel(1 << 16);
    tokio::spawn(forward(g.clone(), sub, tx, false, false));
    tokio::task::yield_now().await;

    // Zone a is cut off: each of its 500 nodes loses its edges to 10 nodes of zone b and back,
    // over two seconds of reports.
    for part in 0..2 {
        for i in (0..ZONE).filter(|i| i % 2 == part) {
            for d in 0..10 {
                let b = ZONE + (i + d) % ZONE;
                down(&g, i, ids[b]);
                down(&g, b, ids[i]);
            }
        }
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    let events = drain(&mut rx).await;
    assert!(
        events.len() <= 8,
        "{} events: {:?}",
        events.len(),
        events.iter().map(|e| &e.message).collect::<Vec<_>>()
    );
    assert!(events.iter().all(|e| e.kind == Kind::EdgeStates as i32));
    let total = |f: &str, t: &str| -> u64 {
        events
            .iter()
            .filter(|e| e.source_zone == f && e.target_zone == t)
            .map(|e| e.edges)
            .sum()
    };
    assert_eq!(total("a", "b"), 5_000);
    assert_eq!(total("b", "a"), 5_000);
    let first = &events[0];
    assert_eq!(
        (first.from, first.to),
        (EdgeState::Up as i32, EdgeState::Down as i32)
    );
    assert!(
        first.message.contains(
            "edges went UP -> DOWN from zone a to zone b (a storm: more than 100 changes a second"
        ),
        "{}",
        first.message
    );

    // The storm is over: a single change is one line again.
    down(&g, 0, ids[1]);
    let events = drain(&mut rx).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, Kind::EdgeState as i32);
    assert_eq!(events[0].source_node, "node-0000");
    assert_eq!(events[0].target_node, "node-0001");
}

#[tokio::test(start_paused = true)]
async fn rotating_edges_coming_up_are_one_count_per_zone_pair() {
    let (g, ids) = graph();
    let sub = g.events.subscribe().expect("subscriber");
    let (tx, mut rx) = mpsc::channel(1 << 16);
    tokio::spawn(forward(g.clone(), sub, tx, false, false));
    tokio::task::yield_now().await;
    for i in 0..ZONE {
        g.events.send(GraphEvent::Edge {
            src: key(i),
            target: ids[i + 1],
            from: EdgeState::Unknown,
            to: EdgeState::Up,
            at_ms: 1,
        });
    }
    let events = drain(&mut rx).await;
    let counts: Vec<(String, String, u64)> = events
        .iter()
        .map(|e| (e.source_zone.clone(), e.target_zone.clone(), e.edges))
        .collect();
    assert_eq!(
        counts,
        [("a".into(), "a".into(), 499), ("a".into(), "b".into(), 1)]
    );
    assert!(
        events[0]
            .message
            .ends_with("(first measurements of new or resumed probes)"),
        "{}",
        events[0].message
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_of_a_small_cluster_still_reads_edge_by_edge_and_every_change_never_counts() {
    let (g, ids) = graph();
    let coalesced = g.events.subscribe().expect("subscriber");
    let every = g.events.subscribe().expect("second subscriber");
    let (tx, mut rx) = mpsc::channel(1 << 16);
    let (tx_all, mut rx_all) = mpsc::channel(1 << 16);
    tokio::spawn(forward(g.clone(), coalesced, tx, false, false));
    tokio::spawn(forward(g.clone(), every, tx_all, false, true));
    tokio::task::yield_now().await;
    // One node of a 13-node cluster cut off: 2 agents x 12 peers x 2 networks x 2 directions.
    for i in 0..96 {
        down(&g, i % 13, ids[500 + i]);
    }
    let one_by_one = drain(&mut rx).await;
    assert_eq!(one_by_one.len(), 96);
    assert!(one_by_one.iter().all(|e| e.kind == Kind::EdgeState as i32));
    // A storm for the first subscriber, but not for the one that asked for every change.
    for i in 0..1_000 {
        down(&g, i % ZONE, ids[ZONE + i % ZONE]);
    }
    let counted = drain(&mut rx).await;
    assert!(counted.len() < 5, "{counted:?}");
    let all = drain(&mut rx_all).await;
    assert_eq!(all.len(), 96 + 1_000);
    assert!(all.iter().all(|e| e.kind == Kind::EdgeState as i32));
}
