//! The budget pinglist over real gRPC: with a budget smaller than the mesh, every agent's
//! assignment stays within it and every agent is still probed by at least the fast probers.

use std::collections::BTreeMap;
use std::time::Duration;

use echomesh_proto::v1;
use echomesh_proto::v1::graph_service_client::GraphServiceClient;
use echomesh_testkit::http::get;
use echomesh_testkit::{SimAgent, TestAggregator};

/// The last assignment an agent gets before the stream goes quiet.
async fn settled(a: &mut SimAgent) -> v1::Assignment {
    let mut last = None;
    while let Some(m) = a.next_within(Duration::from_secs(1)).await {
        if let Some(v1::aggregator_message::Msg::Assignment(x)) =
            m.expect("stream ok").expect("stream open").msg
        {
            last = Some(x);
        }
    }
    last.expect("an assignment")
}

async fn assignments(
    budget_pps: u32,
    nodes: usize,
) -> (TestAggregator, Vec<SimAgent>, Vec<(String, v1::Assignment)>) {
    let s = TestAggregator::start(|c| {
        c.probe_budget_pps = budget_pps;
        c.fast_probers = 2;
    })
    .await;
    let mut agents = Vec::new();
    for i in 0..nodes {
        let name = format!("n{i:02}");
        let a = SimAgent::connect(s.channel().await, &name, &format!("127.0.1.{}", i + 1)).await;
        agents.push((name, a));
    }
    // Every session stays open until all have settled (a closed one would change the others').
    let mut out = Vec::new();
    for (name, a) in &mut agents {
        out.push((name.clone(), settled(a).await));
    }
    (s, agents.into_iter().map(|(_, a)| a).collect(), out)
}

#[tokio::test]
async fn each_assignment_respects_a_small_budget_and_keeps_the_fast_probers() {
    // 100 probes/s at 10 Hz: 10 targets, against 19 peers each.
    let (s, _agents, got) = assignments(100, 20).await;
    let mut probed_by: BTreeMap<String, usize> = BTreeMap::new();
    for (name, a) in &got {
        // At most the budget; the slow arcs hold 80 % of the window on average, so fewer is
        // usual.
        assert!(
            (3..=10).contains(&a.targets.len()),
            "{name}: {} targets",
            a.targets.len()
        );
        assert_eq!(a.probe_interval_ms, 100);
        for t in &a.targets {
            assert_ne!(&t.node, name, "{name} probes itself");
            *probed_by.entry(t.node.clone()).or_default() += 1;
        }
    }
    for (name, _) in &got {
        let n = probed_by.get(name).copied().unwrap_or(0);
        assert!(
            n >= 2,
            "{name} is probed by {n} agents, fewer than --fast-probers 2"
        );
    }
    // The guarantee is on /metrics.
    let m = get(s.http_addr, "/metrics").await.body;
    let value = |series: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{m}"))
    };
    assert!(value("echomesh_pinglist_fast_probers_min{network=\"pod\"}") >= 2.0);
    assert_eq!(value("echomesh_pinglist_agents{network=\"pod\"}"), 20.0);
    let cycle = value("echomesh_pinglist_coverage_cycle_seconds");
    assert!(cycle > 0.0 && cycle <= 900.0, "{cycle}");
    // And in the Coverage query: fewest fast probers first, bounded by the limit.
    let mut q = GraphServiceClient::new(s.channel().await);
    let c = q
        .coverage(v1::CoverageRequest {
            limit: 5,
            ..Default::default()
        })
        .await
        .expect("coverage")
        .into_inner();
    assert_eq!(c.policy, "budget");
    assert_eq!((c.fast_probers_wanted, c.agents_total), (2, 20), "{c:?}");
    assert_eq!(c.agents.len(), 5, "{c:?}");
    assert!(c.agents.iter().all(|a| a.fast_probers >= 2), "{c:?}");
    assert!(
        c.agents
            .windows(2)
            .all(|w| w[0].fast_probers <= w[1].fast_probers)
    );
    assert!(
        c.cycle_ms > 0 && c.cycle_ms <= 900_000 && c.epoch_ms >= 5000,
        "{c:?}"
    );
    let e = q
        .coverage(v1::CoverageRequest {
            limit: 10_001,
            ..Default::default()
        })
        .await
        .expect_err("too many");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("at most 10000"), "{e}");
}

#[tokio::test]
async fn a_budget_the_mesh_fits_in_is_the_full_mesh() {
    let (s, _agents, got) = assignments(200, 12).await;
    for (name, a) in &got {
        assert_eq!(a.targets.len(), 11, "{name}");
    }
    // Full mesh: everyone is a fast prober of everyone, and there is no rotation.
    let c = GraphServiceClient::new(s.channel().await)
        .coverage(v1::CoverageRequest::default())
        .await
        .expect("coverage")
        .into_inner();
    assert_eq!(
        (c.cycle_ms, c.epoch_ms, c.agents_total),
        (0, 0, 12),
        "{c:?}"
    );
    assert!(c.agents.iter().all(|a| a.fast_probers == 11), "{c:?}");
}

#[tokio::test]
async fn the_rotation_sends_new_lists_at_epoch_boundaries_without_membership_changes() {
    // 12 agents, 10 targets each: the slow part moves every 5 s (the shortest epoch).
    let s = TestAggregator::start(|c| {
        c.probe_budget_pps = 100;
        c.fast_probers = 2;
        c.coverage_period = Duration::from_secs(10);
    })
    .await;
    let mut agents = Vec::new();
    for i in 0..12 {
        let a = SimAgent::connect(
            s.channel().await,
            &format!("r{i:02}"),
            &format!("127.0.3.{}", i + 1),
        )
        .await;
        agents.push(a);
    }
    let first = settled(&mut agents[11]).await;
    let ids = |a: &v1::Assignment| a.targets.iter().map(|t| t.id).collect::<Vec<_>>();
    // Nobody joins or leaves; within three epochs a new list must come by itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = agents[11]
            .next_within(left)
            .await
            .unwrap_or_else(|| panic!("no new assignment within 15 s of {:?}", ids(&first)));
        if let Some(v1::aggregator_message::Msg::Assignment(a)) =
            m.expect("stream ok").expect("stream open").msg
        {
            assert!(a.targets.len() <= 10, "{}", a.targets.len());
            if ids(&a) != ids(&first) {
                assert!(a.generation > first.generation);
                break;
            }
        }
    }
}
