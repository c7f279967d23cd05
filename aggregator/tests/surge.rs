//! Two agents of one node and network (a surge rollout) and agents whose address changes (a new
//! pod), over real gRPC: one replacement at most, the older agent stands by, a restart takes over,
//! and edges keep their history across a new pod IP.

use std::time::Duration;

use echomesh_proto::v1::{self, AgentMessage, event::Kind};
use echomesh_testkit::sim::rollout_hello;
use echomesh_testkit::{SimAgent, TestAggregator};
use tonic::{Code, Streaming};

/// Opens a session that must be refused, and returns the refusal.
async fn refused(s: &TestAggregator, first: AgentMessage) -> tonic::Status {
    SimAgent::refusal(s.channel().await, first, None).await
}

/// Every event that arrives until nothing has come for `quiet`.
async fn drain(w: &mut Streaming<v1::Event>, quiet: Duration) -> Vec<v1::Event> {
    let mut out = Vec::new();
    while let Ok(Ok(Some(ev))) = tokio::time::timeout(quiet, w.message()).await {
        out.push(ev);
    }
    out
}

#[tokio::test]
async fn surge_rollout_replaces_once_and_the_older_agent_stands_by() {
    let s = TestAggregator::start(|_| {}).await;
    let mut w = s.watch_events(false).await;
    let mut b = SimAgent::connect(s.channel().await, "b", "127.0.0.2").await;
    let mut old = SimAgent::open(
        s.channel().await,
        rollout_hello("a", "agent-old", 1_000, "127.0.0.1"),
    )
    .await
    .expect("old agent session");
    old.wait_assignment(1).await;
    b.wait_assignment(1).await;
    b.report_acked(10, 0, 200).await;

    // The new pod of the rollout starts later and takes over, once.
    let mut new = SimAgent::open(
        s.channel().await,
        rollout_hello("a", "agent-new", 2_000, "127.0.0.11"),
    )
    .await
    .expect("new agent session");
    let st = old.wait_error().await;
    assert_eq!(st.code(), Code::AlreadyExists);
    assert_eq!(
        st.message(),
        "a newer agent of the same node and network is active (pod \"agent-new\"); standing by until it goes away"
    );
    new.wait_assignment(1).await;

    // The old pod keeps trying while both run: refused every time, the new session untouched.
    for _ in 0..5 {
        let st = refused(&s, rollout_hello("a", "agent-old", 1_000, "127.0.0.1")).await;
        assert_eq!(st.code(), Code::AlreadyExists, "{}", st.message());
        assert!(st.message().contains("agent-new"), "{}", st.message());
        new.report_acked(10, 0, 200).await;
        b.report_acked(10, 0, 200).await;
    }

    let events = drain(&mut w, Duration::from_millis(500)).await;
    let of_a = |k: Kind| {
        events
            .iter()
            .filter(|e| e.kind == k as i32 && e.source_node == "a")
            .count()
    };
    assert_eq!(of_a(Kind::AgentReplaced), 1, "{events:?}");
    assert_eq!(of_a(Kind::AgentDisconnected), 0, "{events:?}");
    assert_eq!(of_a(Kind::AgentConnected), 1, "{events:?}");
    // No edge changed state after it first came up: nothing flapped.
    let flips: Vec<_> = events
        .iter()
        .filter(|e| e.kind == Kind::EdgeState as i32 && e.from != v1::EdgeState::Unknown as i32)
        .collect();
    assert!(flips.is_empty(), "{flips:?}");
    // b's edge towards a is one edge across both pods, now at the new pod's address.
    let e = s.edge("b", "a").await;
    assert_eq!(e.target_address, "127.0.0.11");
    assert_eq!(e.sent_total, 60);
    assert_eq!(e.state, v1::EdgeState::Up as i32);
    s.shutdown().await;
}

/// A client that claims to have started in the future (to outrank the real agent forever) is
/// refused with the reason and counted; the real agent keeps its session.
#[tokio::test]
async fn a_start_time_in_the_future_cannot_outrank_the_real_agent() {
    let s = TestAggregator::start(|_| {}).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let mut real = SimAgent::open(
        s.channel().await,
        rollout_hello("a", "agent-a", now, "127.0.0.1"),
    )
    .await
    .expect("real agent session");
    real.wait_assignment(0).await;
    let forged = rollout_hello("a", "intruder", now + 10 * 365 * 86_400_000, "127.0.0.9");
    let st = refused(&s, forged).await;
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert!(
        st.message().contains("ahead of the aggregator's clock"),
        "{}",
        st.message()
    );
    let metrics = echomesh_testkit::http::get(s.http_addr, "/metrics")
        .await
        .body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("echomesh_ingest_errors_total{reason=\"bad_hello\"} 1")),
        "the refusal is counted"
    );
    let nodes = s.nodes().await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert!(nodes[0].connected, "the real agent keeps its session");
    s.shutdown().await;
}

#[tokio::test]
async fn the_standby_agent_takes_over_once_the_newer_one_is_gone() {
    let s = TestAggregator::start(|_| {}).await;
    let new = SimAgent::open(
        s.channel().await,
        rollout_hello("a", "agent-new", 2_000, "127.0.0.11"),
    )
    .await
    .expect("new agent session");
    let st = refused(&s, rollout_hello("a", "agent-old", 1_000, "127.0.0.1")).await;
    assert_eq!(st.code(), Code::AlreadyExists);
    drop(new);
    echomesh_testkit::soon("the newer agent's session ends", || async {
        s.graph_client()
            .await
            .summary(v1::SummaryRequest {})
            .await
            .is_ok_and(|r| r.into_inner().agents_connected == 0)
    })
    .await;
    let mut old = SimAgent::open(
        s.channel().await,
        rollout_hello("a", "agent-old", 1_000, "127.0.0.1"),
    )
    .await
    .expect("the old agent is accepted once alone");
    old.wait_assignment(0).await;
    s.shutdown().await;
}

#[tokio::test]
async fn a_restarted_agent_takes_over_at_once() {
    let s = TestAggregator::start(|_| {}).await;
    let mut first = SimAgent::open(
        s.channel().await,
        rollout_hello("a", "agent-p", 1_000, "127.0.0.1"),
    )
    .await
    .expect("session");
    // The same pod's container restarted (its old connection is not closed yet): it takes over,
    // and the stale session is closed as replaced, not told to stand by.
    let mut again = SimAgent::open(
        s.channel().await,
        rollout_hello("a", "agent-p", 5_000, "127.0.0.1"),
    )
    .await
    .expect("restart takes over");
    let st = first.wait_error().await;
    assert_eq!(st.code(), Code::Aborted);
    again.wait_assignment(0).await;
    // A newer pod takes over at once as well.
    let mut newer = SimAgent::open(
        s.channel().await,
        rollout_hello("a", "agent-q", 9_000, "127.0.0.5"),
    )
    .await
    .expect("newer pod takes over");
    assert_eq!(again.wait_error().await.code(), Code::AlreadyExists);
    newer.wait_assignment(0).await;
    s.shutdown().await;
}

#[tokio::test]
async fn edge_history_survives_a_new_pod_ip() {
    let s = TestAggregator::start(|_| {}).await;
    let mut a = SimAgent::connect(s.channel().await, "a", "127.0.0.1").await;
    let b = SimAgent::open(
        s.channel().await,
        rollout_hello("b", "agent-b1", 1_000, "127.0.0.2"),
    )
    .await
    .expect("b");
    let before = a.wait_assignment(1).await;
    a.report_acked(100, 10, 200).await;

    // b's agent is rolled: the old pod goes, a new pod with a new IP comes.
    drop(b);
    let _b2 = SimAgent::open(
        s.channel().await,
        rollout_hello("b", "agent-b2", 2_000, "127.0.0.22"),
    )
    .await
    .expect("b's new pod");
    let after = loop {
        let next = a.wait_assignment(1).await;
        if next.targets[0].address == "127.0.0.22" {
            break next;
        }
    };
    assert_eq!(after.targets[0].id, before.targets[0].id, "same edge id");
    assert_eq!(a.report_acked(100, 0, 200).await, 2);

    let e = s.edge("a", "b").await;
    assert_eq!(e.target_address, "127.0.0.22");
    assert_eq!(e.sent_total, 200, "totals carried over");
    let lost: u64 = e.history.iter().map(|m| m.lost).sum();
    assert_eq!(
        lost, 10,
        "the loss ring kept the minute measured at the old address"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn rolling_out_from_agents_without_a_start_time_ends_with_the_new_ones() {
    let s = TestAggregator::start(|_| {}).await;
    let mut legacy = SimAgent::open(
        s.channel().await,
        rollout_hello("a", "agent-old", 0, "127.0.0.1"),
    )
    .await
    .expect("legacy agent");
    let _new = SimAgent::open(
        s.channel().await,
        rollout_hello("a", "agent-new", 2_000, "127.0.0.11"),
    )
    .await
    .expect("new agent takes over");
    assert_eq!(legacy.wait_error().await.code(), Code::AlreadyExists);
    // The legacy agent retries at its usual backoff and is refused each time.
    for _ in 0..3 {
        let st = refused(&s, rollout_hello("a", "agent-old", 0, "127.0.0.1")).await;
        assert_eq!(st.code(), Code::AlreadyExists, "{}", st.message());
    }
    s.shutdown().await;
}
