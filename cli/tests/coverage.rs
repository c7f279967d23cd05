//! `echomesh coverage` against a real aggregator over gRPC: the guarantee line, the agents with
//! the fewest fast probers first, JSON, and a bad limit.

use clap::Parser as _;
use echomesh_cli::Cli;
use echomesh_testkit::{SimAgent, TestAggregator};

async fn run(url: &str, args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["echomesh", "--aggregator", url];
    argv.extend_from_slice(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => return (e.exit_code(), String::new(), e.to_string()),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = echomesh_cli::run(&cli, &mut out, &mut err).await;
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

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
        a.wait_assignment(usize::min(i, 10)).await;
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
