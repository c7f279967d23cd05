//! An agent that stops reading its stream delays nobody else, and loses its assignment.
//!
//! The stuck agent announces a one-byte HTTP/2 receive window and never reads, so after its
//! first assignment nothing more leaves the aggregator for it: its outbox fills with acks and
//! its session task waits for room. It sorts before the healthy agent, so an assigner that
//! served agents one after the other would make the healthy one wait for the stuck one.

use std::time::Duration;

use echomesh_proto::v1::{AggregatorMessage, aggregator_message};
use echomesh_testkit::SimAgent;
use tokio::time::Instant;
use tonic::transport::Endpoint;

use crate::{DEBOUNCE, Loops};

/// Just past a deadline: whatever it triggers has happened by then.
const SETTLE: Duration = Duration::from_millis(5);
/// How long the assigner waits for room in one agent's outbox.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Reports the stuck agent sends: more acks than its outbox (4), the chunk the HTTP/2 layer
/// holds back for want of window (at most an outbox's worth) and the session task's pending
/// send can absorb.
const STUCK_REPORTS: u64 = 16;

/// A session whose agent never reads what the aggregator sends it.
async fn stuck_agent(loops: &Loops) -> SimAgent {
    let tiny_window = Endpoint::from_static("http://in-memory").initial_stream_window_size(1);
    let mut stuck = SimAgent::connect(
        loops
            .server
            .connect(tiny_window)
            .await
            .expect("in-memory connect"),
        "a-stuck",
        "10.0.0.1",
    )
    .await;
    // Its first assignment takes the whole window.
    tokio::time::sleep(DEBOUNCE + SETTLE).await;
    for _ in 0..STUCK_REPORTS {
        let r = stuck.make_report(10, 0, 100);
        stuck.send_report(r).await;
    }
    tokio::time::sleep(SETTLE).await;
    stuck
}

/// Everything the agent can read within [`SETTLE`] of each message.
async fn drain(agent: &mut SimAgent) -> Vec<AggregatorMessage> {
    let mut got = Vec::new();
    while let Some(m) = agent.next_within(SETTLE).await {
        got.push(m.expect("stream ok").expect("stream open"));
    }
    got
}

#[tokio::test(start_paused = true)]
async fn a_stuck_agent_delays_no_one_and_its_assignment_is_dropped() {
    let loops = Loops::start();
    let mut stuck = stuck_agent(&loops).await;

    let mut live = SimAgent::connect(loops.server.channel().await, "b-live", "10.0.0.2").await;
    let joined = Instant::now();
    let assignment = tokio::time::timeout(DEBOUNCE + SETTLE, live.wait_assignment(1))
        .await
        .expect("the live agent is assigned right after the debounce");
    assert!(joined.elapsed() >= DEBOUNCE);
    assert_eq!(assignment.targets[0].node, "a-stuck");
    let r = live.make_report(10, 0, 100);
    live.send_report(r).await;
    tokio::time::timeout(SETTLE, live.wait_ack(1))
        .await
        .expect("the live agent's report is acked at once");

    // The assigner gives up on the stuck agent after its send timeout; the session stays open.
    tokio::time::sleep_until(joined + DEBOUNCE + SEND_TIMEOUT + SETTLE).await;
    assert_eq!(loops.ingest.connected(), 2);

    // Reading again, the stuck agent finds its first assignment and every ack, in order, but
    // not the assignment that timed out.
    let got = drain(&mut stuck).await;
    let mut kinds = got.iter().map(|m| m.msg.clone());
    match kinds.next() {
        Some(Some(aggregator_message::Msg::Assignment(a))) => assert!(a.targets.is_empty()),
        other => panic!("expected the first assignment, got {other:?}"),
    }
    let acks: Vec<u64> = kinds
        .map(|k| match k {
            Some(aggregator_message::Msg::Ack(a)) => a.seq,
            other => panic!("expected only acks after the first assignment, got {other:?}"),
        })
        .collect();
    assert_eq!(acks, (1..=STUCK_REPORTS).collect::<Vec<_>>());

    // The dropped assignment is sent again in the next round although its pinglist is
    // unchanged; the live agent's unchanged one is not.
    loops.ingest.membership_changed();
    let again = tokio::time::timeout(DEBOUNCE + SETTLE, stuck.wait_assignment(1))
        .await
        .expect("the dropped assignment is retried next round");
    assert_eq!(again.targets[0].node, "b-live");
    assert!(again.generation > assignment.generation);
    assert!(live.next_within(DEBOUNCE).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_stuck_agent_does_not_hold_up_the_next_round() {
    let loops = Loops::start();
    let _stuck = stuck_agent(&loops).await;
    let mut live = SimAgent::connect(loops.server.channel().await, "b-live", "10.0.0.2").await;
    tokio::time::timeout(DEBOUNCE + SETTLE, live.wait_assignment(1))
        .await
        .expect("the live agent is assigned right after the debounce");

    // Well within the send timeout of the stuck agent's assignment from that round.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut late = SimAgent::connect(loops.server.channel().await, "c-late", "10.0.0.3").await;
    let joined = Instant::now();
    tokio::time::timeout(DEBOUNCE + SETTLE, late.wait_assignment(2))
        .await
        .expect("a later joiner is assigned right after the debounce");
    assert!(joined.elapsed() >= DEBOUNCE);
    tokio::time::timeout(SETTLE, live.wait_assignment(2))
        .await
        .expect("the live agent learns of the joiner in the same round");
}
