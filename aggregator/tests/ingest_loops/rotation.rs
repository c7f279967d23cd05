//! A round woken by the policy's rotation alone recomputes only the lists the policy says
//! rotated; a membership change still recomputes every list.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use echomesh_aggregator::graph::AgentKey;
use echomesh_aggregator::policy::{FullMesh, Peer, PinglistSource, PlannedTarget};
use echomesh_proto::v1::aggregator_message;
use echomesh_testkit::SimAgent;

use crate::{DEBOUNCE, Loops};

/// How often the test policy says its lists rotate.
const EPOCH: Duration = Duration::from_secs(1);

/// The full mesh, with every target marked expected-down once `flipped`: every list changes,
/// but the policy claims only `node-a`'s rotated.
#[derive(Debug, Default)]
struct Rotating {
    flipped: AtomicBool,
}

impl PinglistSource for Rotating {
    fn targets(&self, agent: &AgentKey, peers: &[Peer]) -> Vec<PlannedTarget> {
        let flipped = self.flipped.load(Ordering::SeqCst);
        FullMesh
            .targets(agent, peers)
            .into_iter()
            .map(|t| PlannedTarget {
                expected_down: flipped,
                ..t
            })
            .collect()
    }

    fn refresh_in(&self) -> Option<Duration> {
        Some(EPOCH)
    }

    fn rotated(&self, agent: &AgentKey, _since: Duration, _now: Duration) -> bool {
        &*agent.node == "node-a"
    }
}

#[tokio::test(start_paused = true)]
async fn a_rotation_round_sends_only_the_rotated_lists() {
    let policy = Arc::new(Rotating::default());
    let loops = Loops::start_with(policy.clone());
    let mut a = SimAgent::connect(loops.server.channel().await, "node-a", "10.0.0.1").await;
    let mut b = SimAgent::connect(loops.server.channel().await, "node-b", "10.0.0.2").await;
    let _ = a.wait_assignment(1).await;
    let first_b = b.wait_assignment(1).await;
    assert!(!first_b.targets[0].expected_down);

    policy.flipped.store(true, Ordering::SeqCst);
    // The next rotation round: node-a's list is recomputed and sent, node-b's is not, though
    // it would differ too.
    let Some(aggregator_message::Msg::Assignment(rotated)) = a
        .next_within(EPOCH + DEBOUNCE * 2)
        .await
        .expect("node-a's rotated list")
        .expect("stream ok")
        .expect("stream open")
        .msg
    else {
        panic!("expected an assignment");
    };
    assert!(rotated.targets[0].expected_down);
    let quiet = b.next_within(EPOCH * 5).await;
    assert!(quiet.is_none(), "node-b was not rotated: {quiet:?}");

    // A membership change recomputes every list: node-b gets its changed one.
    let _c = SimAgent::connect(loops.server.channel().await, "node-c", "10.0.0.3").await;
    let after = b.wait_assignment(2).await;
    assert!(after.targets.iter().all(|t| t.expected_down), "{after:?}");
    assert!(after.generation > first_b.generation);
}
