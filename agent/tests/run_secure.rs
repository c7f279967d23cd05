//! `echomesh-agent run` against an aggregator that requires a token and serves TLS: agents with
//! the token and the CA connect and are assigned; one with a wrong token never gets a session.
//! Needs root (raw sockets); says so and passes otherwise.

mod support;

use std::path::Path;
use std::time::Duration;

use echomesh_agent::metrics::AgentMetrics;
use echomesh_agent::report::{self, RunArgs};
use echomesh_aggregator::graph::AgentKey;
use echomesh_proto::v1::Network;
use echomesh_testkit::eventually::eventually_some;
use echomesh_testkit::tls::TestPki;
use echomesh_testkit::{TestAggregator, require_root};

use support::{POLL, Running, SOON};

/// A loopback agent that dials `url` over TLS trusting `ca`, with the token in `token`.
fn args(url: &str, node: &str, addr: &str, token: &Path, ca: &Path) -> RunArgs {
    RunArgs {
        pod: format!("agent-{node}"),
        agent_token_file: Some(token.to_path_buf()),
        tls_ca: Some(ca.to_path_buf()),
        ..support::run_args(url, node, addr)
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

    let agents: Vec<Running> = [
        ("a", "127.0.0.1", &token),
        ("b", "127.0.0.2", &token),
        ("intruder", "127.0.0.3", &wrong),
    ]
    .into_iter()
    .map(|(node, addr, tok)| {
        let args = args(&url, node, addr, tok, &pki.ca);
        Running::spawn(|shutdown| report::run_with(args, AgentMetrics::new(), shutdown.wait()))
    })
    .collect();
    let key = |node: &str| AgentKey {
        node: node.into(),
        network: Network::Pod,
    };
    eventually_some(
        "agents a and b connected over TLS with the token",
        SOON,
        POLL,
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
    for agent in agents {
        agent.stop_any().await;
    }
    agg.shutdown().await;
}
