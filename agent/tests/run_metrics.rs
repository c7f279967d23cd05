//! `echomesh-agent run` feeds its `/metrics`: two loopback agents probe each other through a real
//! aggregator, and one agent's scrape shows the probes it sent and received. Needs root (raw
//! sockets); says so and passes otherwise.

mod support;

use std::time::Duration;

use echomesh_agent::metrics::{self, AgentMetrics};
use echomesh_agent::report;
use echomesh_testkit::eventually::eventually_some;
use echomesh_testkit::http::get;
use echomesh_testkit::{TestAggregator, require_root};

use support::{POLL, Running, SOON};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_loop_feeds_the_agent_metrics() {
    require_root!("raw ICMP sockets");
    let agg = TestAggregator::start(|cfg| {
        cfg.probe_interval = Duration::from_millis(20);
        cfg.report_interval = Duration::from_millis(200);
        cfg.assign_debounce = Duration::from_millis(20);
    })
    .await;
    let url = agg.url();

    let m = AgentMetrics::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind metrics");
    let http = listener.local_addr().expect("addr");
    let server = tokio::spawn(metrics::serve(listener, m.clone()));
    let agents: Vec<Running> = [
        ("a", "127.0.0.1", m.clone()),
        ("b", "127.0.0.2", AgentMetrics::new()),
    ]
    .into_iter()
    .map(|(node, addr, metrics)| {
        let args = support::run_args(&url, node, addr);
        Running::spawn(|shutdown| report::run_with(args, metrics, shutdown.wait()))
    })
    .collect();

    let scrape = eventually_some(
        "agent a's /metrics shows received probes and its one target",
        SOON,
        POLL,
        || async {
            let r = get(http, "/metrics").await;
            let done = value(&r.body, r#"echomesh_agent_probes_total{result="received"}"#) >= 5.0
                && value(&r.body, "echomesh_agent_targets") == 1.0;
            done.then_some(r)
        },
    )
    .await;
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    assert!(
        value(
            &scrape.body,
            r#"echomesh_agent_probes_total{result="sent"}"#
        ) >= 5.0
    );
    assert_eq!(get(http, "/healthz").await.status, 200);

    for agent in agents {
        agent.stop().await;
    }
    server.abort();
    agg.shutdown().await;
}
