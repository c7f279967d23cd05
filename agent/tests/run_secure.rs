//! `echomesh-agent run` against an aggregator that requires a token and serves TLS: agents with
//! the token and the CA connect and are assigned; one with a wrong token never gets a session.
//! Needs root (raw sockets); says so and passes otherwise.

use std::time::Duration;

use echomesh_agent::metrics::AgentMetrics;
use echomesh_agent::report::{self, RunArgs};
use echomesh_aggregator::graph::AgentKey;
use echomesh_proto::v1::Network;
use echomesh_testkit::eventually::eventually_some;
use echomesh_testkit::tls::TestPki;
use echomesh_testkit::{TestAggregator, require_root};
use tokio::sync::oneshot;

/// Generous: loaded CI machines must not flake.
const SOON: Duration = Duration::from_secs(20);

fn args(
    url: &str,
    node: &str,
    addr: &str,
    token: &std::path::Path,
    ca: &std::path::Path,
) -> RunArgs {
    RunArgs {
        aggregator: url.to_string(),
        node: node.into(),
        pod: format!("agent-{node}"),
        network: Network::Pod,
        addresses: vec![addr.parse().expect("ip")],
        replay_buffer: 100,
        replay_buffer_bytes: 64 << 20,
        max_backoff: Duration::from_millis(200),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        guard: echomesh_agent::report::GuardArgs::allowing(&["127.0.0.0/8"]),
        agent_token_file: Some(token.to_path_buf()),
        tls_ca: Some(ca.to_path_buf()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_with_the_token_and_the_ca_connect_and_a_wrong_token_does_not() {
    require_root!("raw ICMP sockets");
    let pki = TestPki::new("agent-run");
    let token = pki.dir().join("agent-token");
    let wrong = pki.dir().join("wrong-token");
    std::fs::write(&token, "the-right-token\n").expect("token");
    std::fs::write(&wrong, "a-guessed-token\n").expect("token");
    let (cert, key, agg_token) = (pki.cert.clone(), pki.key.clone(), token.clone());
    let agg = TestAggregator::start(move |cfg| {
        cfg.tls_cert = Some(cert);
        cfg.tls_key = Some(key);
        cfg.agent_token_file = Some(agg_token);
        cfg.probe_interval = Duration::from_millis(50);
        cfg.report_interval = Duration::from_millis(200);
    })
    .await;
    let url = format!("https://127.0.0.1:{}", agg.grpc_addr.port());

    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for (node, addr, tok) in [
        ("a", "127.0.0.1", &token),
        ("b", "127.0.0.2", &token),
        ("intruder", "127.0.0.3", &wrong),
    ] {
        let (stop, rx) = oneshot::channel::<()>();
        stops.push(stop);
        tasks.push(tokio::spawn(report::run_with(
            args(&url, node, addr, tok, &pki.ca),
            AgentMetrics::new(),
            async {
                let _ = rx.await;
            },
        )));
    }
    let key = |node: &str| AgentKey {
        node: node.into(),
        network: Network::Pod,
    };
    eventually_some(
        "agents a and b connected over TLS with the token",
        SOON,
        Duration::from_millis(50),
        || async {
            let up = |n: &str| {
                agg.graph
                    .agent(&key(n))
                    .is_some_and(|a| a.info.lock().connected)
            };
            (up("a") && up("b")).then_some(())
        },
    )
    .await;
    // By now the intruder has tried several times (200 ms backoff at most): never let in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        agg.graph.agent(&key("intruder")).is_none(),
        "a wrong token never gets a session"
    );
    let metrics = echomesh_testkit::http::get(agg.http_addr, "/metrics")
        .await
        .body;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("echomesh_agent_auth_failures_total{reason=\"bad_token\"} ")
            && !l.ends_with(" 0")),
        "bad_token refusals counted"
    );
    for s in stops {
        let _ = s.send(());
    }
    for t in tasks {
        let _ = tokio::time::timeout(SOON, t).await;
    }
    agg.shutdown().await;
}
