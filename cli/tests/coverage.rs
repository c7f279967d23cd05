//! `echomesh coverage` against a real aggregator over gRPC: the guarantee line, the agents with
//! the fewest fast probers first, JSON, and a bad limit.

mod support;

use echomesh_testkit::{SimAgent, TestAggregator};

use support::run;

#[tokio::test]
async fn coverage_shows_the_guarantee_and_the_fewest_probed_agents() {
    // 100 probes/s with 2 fast probers: 10 targets against 11 peers, so the budget rotates.
    let s = TestAggregator::start(|c| {
        c.probe_budget_pps = 100;
        c.fast_probers = 2;
    })
    .await;
    let mut agents = Vec::new();
    for i in 0..12 {
        let mut a = SimAgent::connect(
            s.channel().await,
            &format!("n{i:02}"),
            &format!("127.0.2.{}", i + 1),
        )
        .await;
        if i <= 10 {
            a.wait_assignment(i).await;
        } else {
            // Beyond the budget the list rotates, and its slow arc varies in size.
            let _ = a.next().await;
        }
        agents.push(a);
    }
    let url = s.url();
    let (code, out, err) = run(&url, &["coverage", "--limit", "3"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("pinglist budget: every pair probed within ")
            && first.ends_with("; 2 fast probers wanted; 12 agents"),
        "{out}"
    );
    assert!(
        out.contains("NODE") && out.contains("FAST-PROBERS"),
        "{out}"
    );
    assert!(
        out.contains("(the 3 with the fewest fast probers of 12; --limit shows more)"),
        "{out}"
    );

    let (code, out, _) = run(&url, &["-o", "json", "coverage"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["policy"], "budget");
    assert_eq!(v["agents_total"], 12);
    assert_eq!(v["agents"].as_array().map(Vec::len), Some(12));
    assert_eq!(v["agents"][0]["network"], "pod");
    assert!(v["agents"][0]["fast_probers"].as_u64() >= Some(2), "{v}");
    assert!(v["cycle_ms"].as_u64() > Some(0), "{v}");

    let (code, _, err) = run(&url, &["coverage", "--limit", "0"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--limit"), "{err}");
    drop(agents);
}

#[tokio::test]
async fn coverage_node_lists_its_probers_with_the_age_of_their_last_probe() {
    // Full mesh (three agents fit any budget): every pair is in a pinglist now.
    let s = TestAggregator::start(|_| {}).await;
    let mut agents = Vec::new();
    for i in 0..3 {
        let mut a = SimAgent::connect(
            s.channel().await,
            &format!("n{i}"),
            &format!("127.0.3.{}", i + 1),
        )
        .await;
        a.wait_assignment(i).await;
        agents.push(a);
    }
    for a in &mut agents {
        if a.assignment.as_ref().map(|x| x.targets.len()) != Some(2) {
            a.wait_assignment(2).await;
        }
    }
    // n1 has reported probes to both peers; n2 has not reported yet.
    let r = agents[1].make_report(10, 0, 300);
    agents[1].send_report(r).await;
    agents[1].wait_ack(1).await;
    let url = s.url();

    let (code, out, err) = run(&url, &["coverage", "--node", "n0"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pairs: 6 between connected agents"), "{out}");
    assert!(
        out.contains("PROBER") && out.contains("LAST-PROBED"),
        "{out}"
    );
    let n2 = out
        .lines()
        .find(|l| l.starts_with("n2/pod"))
        .expect("n2 row");
    assert!(n2.contains("never") && n2.contains("yes"), "{out}");
    let n1 = out
        .lines()
        .find(|l| l.starts_with("n1/pod"))
        .expect("n1 row");
    assert!(
        !n1.contains("never") && n1.contains("pod/127.0.3.1"),
        "{out}"
    );
    // Never probed comes first.
    let at = |p: &str| out.find(p).expect("row");
    assert!(at("n2/pod") < at("n1/pod"), "{out}");

    let (code, out, _) = run(&url, &["-o", "json", "coverage", "--node", "n0"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["inbound_total"], 2, "{v}");
    assert_eq!(v["inbound"][0]["prober_node"], "n2");
    assert_eq!(
        v["inbound"][0]["last_probed_age_ms"],
        serde_json::Value::Null
    );
    assert!(
        v["inbound"][1]["last_probed_age_ms"].as_u64() < Some(60_000),
        "{v}"
    );
    assert_eq!(v["pairs"], 6);
    assert_eq!(
        v["pairs_overdue"], 0,
        "nobody has had a whole period yet: {v}"
    );

    let (code, _, err) = run(&url, &["coverage", "--node", "nope"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no connected agent on node \"nope\""), "{err}");
    drop(agents);
}
