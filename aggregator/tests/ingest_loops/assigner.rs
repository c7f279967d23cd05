//! The assigner pushes a new generation to every session after membership settles, and only then.

use std::time::Duration;

use echomesh_proto::v1::{self, aggregator_message};
use echomesh_testkit::SimAgent;
use tokio::time::Instant;

use crate::{DEBOUNCE, Loops};

/// Just past the debounce: the round has run by then.
const SETTLE: Duration = Duration::from_millis(5);

/// Asserts that `a` hears nothing until just before the debounce has passed from now, and returns
/// the assignment that must come within [`SETTLE`] after it.
async fn next_round(a: &mut SimAgent) -> v1::Assignment {
    let early = a.next_within(DEBOUNCE - Duration::from_millis(1)).await;
    assert!(early.is_none(), "nothing before the debounce: {early:?}");
    let msg = a
        .next_within(SETTLE)
        .await
        .expect("assigned just after the debounce")
        .expect("stream ok")
        .expect("stream open");
    let Some(aggregator_message::Msg::Assignment(assigned)) = msg.msg else {
        panic!("expected an assignment, got {msg:?}");
    };
    assigned
}

#[tokio::test(start_paused = true)]
async fn a_second_agent_gets_the_first_a_new_generation_after_the_debounce() {
    let loops = Loops::start();
    let mut a = SimAgent::connect(loops.server.channel().await, "node-a", "10.0.0.1").await;
    let first = a.wait_assignment(0).await;

    let mut b = SimAgent::connect(loops.server.channel().await, "node-b", "10.0.0.2").await;
    let joined = Instant::now();
    let second = next_round(&mut a).await;
    let assigned_after = joined.elapsed();
    assert!(
        assigned_after >= DEBOUNCE && assigned_after < DEBOUNCE + SETTLE,
        "assigned {assigned_after:?} after the join"
    );
    assert!(second.generation > first.generation);
    assert_eq!(second.targets.len(), 1);
    assert_eq!(second.targets[0].node, "node-b");

    let theirs = b.wait_assignment(1).await;
    assert_eq!(theirs.targets[0].node, "node-a");
    assert_ne!(theirs.generation, second.generation);
    assert!(theirs.generation > first.generation);
}

#[tokio::test(start_paused = true)]
async fn joins_within_the_debounce_cause_one_round() {
    let loops = Loops::start();
    let mut a = SimAgent::connect(loops.server.channel().await, "node-a", "10.0.0.1").await;
    let first = a.wait_assignment(0).await;

    let _b = SimAgent::connect(loops.server.channel().await, "node-b", "10.0.0.2").await;
    tokio::time::sleep(DEBOUNCE / 2).await;
    let _c = SimAgent::connect(loops.server.channel().await, "node-c", "10.0.0.3").await;
    let last_join = Instant::now();
    // The second join restarted the quiet period: nothing at the first join's deadline.
    let only = next_round(&mut a).await;
    assert!(last_join.elapsed() >= DEBOUNCE);
    assert_eq!(only.targets.len(), 2, "one round for both joins");
    assert!(only.generation > first.generation);
}
