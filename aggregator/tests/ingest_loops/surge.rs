//! A surge rollout held for minutes: the old agent pod keeps asking for the session while the new
//! one holds it. One replacement, every later attempt refused, and the peers' pinglists do not
//! flap between the two pods' addresses.

use std::time::Duration;

use echomesh_aggregator::ingest::IngestErrorReason;
use echomesh_proto::v1::{self, AgentMessage, aggregator_message};
use echomesh_testkit::SimAgent;
use echomesh_testkit::sim::rollout_hello;
use tonic::Code;

use crate::{DEBOUNCE, Loops};

/// The Hello of node-a's agent in pod `pod`, started at `started`.
fn hello(pod: &str, started: u64, addr: &str) -> AgentMessage {
    rollout_hello("node-a", pod, started, addr)
}

/// Assignments that arrive on `peer` within `wait`.
async fn assignments(peer: &mut SimAgent, wait: Duration) -> Vec<v1::Assignment> {
    let mut out = Vec::new();
    while let Some(Ok(Some(m))) = peer.next_within(wait).await {
        if let Some(aggregator_message::Msg::Assignment(a)) = m.msg {
            out.push(a);
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn five_minutes_of_surge_replace_once_and_never_flap() {
    let loops = Loops::start();
    let mut peer = SimAgent::connect(loops.server.channel().await, "node-b", "10.0.0.2").await;
    let mut old = SimAgent::open(
        loops.server.channel().await,
        hello("old", 1_000, "10.0.0.1"),
    )
    .await
    .expect("old pod");
    old.wait_assignment(1).await;
    let first = peer.wait_assignment(1).await;

    let _new = SimAgent::open(
        loops.server.channel().await,
        hello("new", 2_000, "10.0.0.11"),
    )
    .await
    .expect("new pod");
    assert_eq!(old.wait_error().await.code(), Code::AlreadyExists);
    let moved = assignments(&mut peer, DEBOUNCE * 2).await;
    assert_eq!(moved.len(), 1, "one new pinglist for the new address");
    assert_eq!(moved[0].targets[0].id, first.targets[0].id);
    assert_eq!(moved[0].targets[0].address, "10.0.0.11");

    // The old pod asks again every 5 s for 5 minutes (as if it ignored the standby answer).
    let mut attempts = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let st = match SimAgent::open(
            loops.server.channel().await,
            hello("old", 1_000, "10.0.0.1"),
        )
        .await
        {
            Err(st) => st,
            Ok(mut a) => a.wait_error().await,
        };
        assert_eq!(st.code(), Code::AlreadyExists, "{}", st.message());
        attempts += 1;
    }
    assert_eq!(loops.errors(IngestErrorReason::StandBy), attempts);
    let later = assignments(&mut peer, DEBOUNCE * 2).await;
    assert!(later.is_empty(), "the peer's pinglist flapped: {later:?}");
    let a = loops
        .graph
        .agent(&echomesh_aggregator::graph::AgentKey {
            node: "node-a".into(),
            network: v1::Network::Pod,
        })
        .expect("node-a");
    let info = a.info.lock();
    assert_eq!(info.pod, "new");
    assert!(info.connected);
}
