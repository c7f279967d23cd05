//! The loss windows end to end: a simulated agent reports a known loss step through real gRPC,
//! and `GetEdge` reads the exact injected loss one window after the step (and 0 one window after
//! it clears). Graph time is moved forward one second per report, so minutes play in
//! milliseconds; nothing here needs root.

use std::time::Duration;

use echomesh_testkit::{SimAgent, TestAggregator};

/// Sends `n` one-second reports of 100 probes with `lost` lost, moving graph time 1 s each.
async fn play(s: &TestAggregator, a: &mut SimAgent, n: u32, lost: u64) {
    for _ in 0..n {
        a.report_acked(100, lost, 300).await;
        s.graph.advance_clock(Duration::from_secs(1));
    }
}

#[tokio::test]
async fn a_loss_step_reads_exactly_one_window_later_through_grpc() {
    let s = TestAggregator::start(|_| {}).await;
    let mut a = SimAgent::connect(s.channel().await, "a", "10.0.0.1").await;
    let _b = SimAgent::connect(s.channel().await, "b", "10.0.0.2").await;
    a.wait_assignment(1).await;

    // Ten clean minutes, then a step to 20 % loss.
    play(&s, &mut a, 600, 0).await;
    let e = s.edge("a", "b").await;
    assert_eq!(
        (e.loss_10s_pct, e.loss_1m_pct, e.loss_10m_pct),
        (0.0, 0.0, 0.0)
    );
    play(&s, &mut a, 5, 20).await;
    let e = s.edge("a", "b").await;
    assert!(
        e.loss_10s_pct > 0.0 && e.loss_10s_pct < 20.0,
        "half a window in: {e:?}"
    );
    play(&s, &mut a, 5, 20).await;
    assert_eq!(
        s.edge("a", "b").await.loss_10s_pct,
        20.0,
        "10 s after the step"
    );
    play(&s, &mut a, 50, 20).await;
    let e = s.edge("a", "b").await;
    assert_eq!((e.loss_10s_pct, e.loss_1m_pct), (20.0, 20.0), "1 min after");
    assert!(e.loss_10m_pct > 0.0 && e.loss_10m_pct < 20.0, "{e:?}");

    // The loss clears.
    play(&s, &mut a, 10, 0).await;
    let e = s.edge("a", "b").await;
    assert_eq!(e.loss_10s_pct, 0.0, "10 s after the clear");
    assert!(e.loss_1m_pct > 0.0, "{e:?}");
    play(&s, &mut a, 50, 0).await;
    let e = s.edge("a", "b").await;
    assert_eq!((e.loss_10s_pct, e.loss_1m_pct), (0.0, 0.0), "1 min after");
    assert!(
        e.loss_10m_pct > 0.0,
        "the 10-minute window still holds the step"
    );
    play(&s, &mut a, 540, 0).await;
    assert_eq!(s.edge("a", "b").await.loss_10m_pct, 0.0, "10 min after");
    // The lifetime counters hold every probe.
    let e = s.edge("a", "b").await;
    assert_eq!(e.sent_total, 1260 * 100);
    assert_eq!(e.received_total, 1260 * 100 - 60 * 20);
}
