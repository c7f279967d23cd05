//! An agent aimed by someone else: the real run loop, a real aggregator on 127.0.0.1 and a
//! recording engine (no raw sockets, so no root). A forged Hello announcing a public address
//! makes the aggregator assign it to the agent, which refuses the assignment as a whole, says
//! why, counts it, keeps probing its last good pinglist, and never sends a packet to the forged
//! address.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use echomesh_agent::metrics::AgentMetrics;
use echomesh_agent::prober::stats::{EngineCounters, TargetStats};
use echomesh_agent::prober::{EngineError, ProbeSettings, TargetFlip, TargetSpec, TargetWindow};
use echomesh_agent::report::{self, GuardArgs, ProbeEngine, RunArgs, StartEngine, UrlConnector};
use echomesh_proto::v1::{self, EdgeState, Network};
use echomesh_testkit::{SimAgent, TestAggregator, eventually::eventually};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Default)]
struct Log {
    /// Every target list the engine was given (start and reassignments).
    given: Vec<Vec<TargetSpec>>,
    targets: Vec<TargetSpec>,
    /// Set to play an engine that died (its task ended).
    stopped: bool,
}

type Shared = Arc<Mutex<Log>>;

fn lock(l: &Shared) -> std::sync::MutexGuard<'_, Log> {
    l.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every target answers every probe.
struct Engine {
    log: Shared,
    flips: mpsc::Receiver<TargetFlip>,
}

impl ProbeEngine for Engine {
    fn assign(&self, _: ProbeSettings, targets: Vec<TargetSpec>) -> Result<(), EngineError> {
        let mut l = lock(&self.log);
        l.given.push(targets.clone());
        l.targets = targets;
        Ok(())
    }

    fn take_window(&self) -> impl Future<Output = Vec<TargetWindow>> + Send {
        let windows: Vec<TargetWindow> = lock(&self.log)
            .targets
            .iter()
            .map(|t| {
                let mut stats = TargetStats {
                    sent: 2,
                    received: 2,
                    ..TargetStats::default()
                };
                stats.rtt.record_ns(300_000);
                TargetWindow {
                    id: t.id,
                    addr: t.addr,
                    stats,
                }
            })
            .collect();
        async move { windows }
    }

    async fn counters(&self) -> EngineCounters {
        EngineCounters::default()
    }

    fn flips(&mut self) -> &mut mpsc::Receiver<TargetFlip> {
        &mut self.flips
    }

    async fn shutdown(self) {}

    fn is_running(&self) -> bool {
        !lock(&self.log).stopped
    }
}

struct Starter(Shared);

impl StartEngine for Starter {
    type Engine = Engine;

    fn start(&mut self, _: ProbeSettings, targets: Vec<TargetSpec>) -> Result<Engine, EngineError> {
        let mut l = lock(&self.0);
        l.given.push(targets.clone());
        l.targets = targets;
        Ok(Engine {
            log: self.0.clone(),
            flips: mpsc::channel(1).1,
        })
    }
}

async fn nodes(agg: &TestAggregator) -> Vec<v1::Node> {
    agg.graph_client()
        .await
        .list_nodes(v1::ListNodesRequest {})
        .await
        .expect("nodes")
        .into_inner()
        .nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_public_peer_cannot_aim_the_agent() {
    let agg = TestAggregator::start(|c| {
        c.report_interval = Duration::from_millis(200);
        c.assign_debounce = Duration::from_millis(20);
    })
    .await;
    let log = Shared::default();
    let metrics = AgentMetrics::new();
    let args = RunArgs {
        aggregator: agg.url(),
        node: "real".into(),
        pod: String::new(),
        network: Network::Pod,
        addresses: vec!["10.0.0.1".parse().expect("ip")],
        replay_buffer: 100,
        replay_buffer_bytes: 64 << 20,
        max_backoff: Duration::from_millis(200),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        guard: GuardArgs::default(),
        agent_token_file: None,
        tls_ca: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = tokio::spawn({
        let (log, metrics, url) = (log.clone(), metrics.clone(), agg.url());
        async move {
            report::run_over(
                &args,
                UrlConnector::new(&url).expect("url"),
                Starter(log),
                metrics,
                async {
                    let _ = stopped.await;
                },
            )
            .await
        }
    });

    // A genuine peer: the agent probes it and its edge comes UP.
    let mut peer = SimAgent::connect(agg.channel().await, "peer", "10.0.0.2").await;
    peer.wait_assignment(1).await;
    let edge_up = || async {
        agg.graph_client()
            .await
            .list_edges(v1::ListEdgesRequest {
                source_node: "real".into(),
                ..v1::ListEdgesRequest::default()
            })
            .await
            .is_ok_and(|r| {
                // After the refusal the aggregator lists the forged target too (UNKNOWN: the
                // agent never probes it); the genuine one is what matters.
                r.into_inner().edges.iter().any(|e| {
                    e.target_node == "peer"
                        && e.state == EdgeState::Up as i32
                        && e.received_total > 0
                })
            })
    };
    eventually(
        "the real agent's edge UP",
        Duration::from_secs(20),
        Duration::from_millis(50),
        edge_up,
    )
    .await;

    // A forged peer announcing a public address (the aggregator accepts unicast; the agent's
    // --allow-cidr decides).
    let _forged = SimAgent::connect(agg.channel().await, "forged", "198.51.100.7").await;
    let want = "target 198.51.100.7 is outside --allow-cidr (10.0.0.0/8, 172.16.0.0/12, \
                192.168.0.0/16, 100.64.0.0/10, fc00::/7, 10.0.0.1/32)";
    eventually(
        "echomesh nodes shows the refusal",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            nodes(&agg)
                .await
                .iter()
                .any(|n| n.name == "real" && n.assignment_rejected == want)
        },
    )
    .await;
    assert!(metrics.assignments_rejected() >= 1);
    let scrape = echomesh_testkit::http::get(agg.http_addr, "/metrics")
        .await
        .body;
    assert!(
        scrape.lines().any(|l| l
            .starts_with("echomesh_ingest_errors_total{reason=\"assignment_rejected\"} ")
            && !l.ends_with(" 0")),
        "{scrape}"
    );
    assert!(metrics.render(false).lines().any(|l| {
        l.starts_with("echomesh_agent_assignments_rejected_total ") && !l.ends_with(" 0")
    }),);

    // The agent kept running its last good pinglist: the genuine edge stays UP and keeps
    // growing, and the forged address never reached the engine.
    let before = lock(&log).given.len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    eventually(
        "the genuine edge still UP",
        Duration::from_secs(20),
        Duration::from_millis(50),
        edge_up,
    )
    .await;
    let given = lock(&log).given.clone();
    assert!(
        given
            .iter()
            .flatten()
            .all(|t| t.addr.to_string() != "198.51.100.7"),
        "{given:?}"
    );
    assert_eq!(
        given.len(),
        before,
        "no assignment reached the engine since"
    );
    assert!(
        !agent.is_finished(),
        "a refused assignment never stops the agent"
    );
    let _ = stop.send(());
    agent.await.expect("join").expect("clean stop");
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_engine_died_turns_its_edges_unknown_and_fails_healthz() {
    let agg = TestAggregator::start(|c| {
        c.report_interval = Duration::from_millis(200);
        c.assign_debounce = Duration::from_millis(20);
    })
    .await;
    let metrics = AgentMetrics::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let health_addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(echomesh_agent::metrics::serve(listener, metrics.clone()));
    let args = RunArgs {
        aggregator: agg.url(),
        node: "dying".into(),
        pod: String::new(),
        network: Network::Pod,
        addresses: vec!["10.0.0.1".parse().expect("ip")],
        replay_buffer: 100,
        replay_buffer_bytes: 64 << 20,
        max_backoff: Duration::from_millis(200),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        guard: GuardArgs::default(),
        agent_token_file: None,
        tls_ca: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let log = Shared::default();
    let agent = tokio::spawn({
        let (log, metrics, url) = (log.clone(), metrics.clone(), agg.url());
        async move {
            report::run_over(
                &args,
                UrlConnector::new(&url).expect("url"),
                Starter(log),
                metrics,
                async {
                    let _ = stopped.await;
                },
            )
            .await
        }
    });
    let mut peer = SimAgent::connect(agg.channel().await, "peer", "10.0.0.2").await;
    peer.wait_assignment(1).await;
    let state = || async {
        agg.graph_client()
            .await
            .list_edges(v1::ListEdgesRequest {
                source_node: "dying".into(),
                ..v1::ListEdgesRequest::default()
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().edges.first().map(|e| e.state))
    };
    eventually(
        "the edge UP",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async { state().await == Some(EdgeState::Up as i32) },
    )
    .await;
    assert_eq!(
        echomesh_testkit::http::get(health_addr, "/healthz")
            .await
            .status,
        200
    );

    lock(&log).stopped = true;
    eventually(
        "the edge UNKNOWN",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async { state().await == Some(EdgeState::Unknown as i32) },
    )
    .await;
    let r = echomesh_testkit::http::get(health_addr, "/healthz").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "the probe engine stopped\n")
    );
    let _ = stop.send(());
    agent.await.expect("join").expect("clean stop");
    server.abort();
    agg.shutdown().await;
}
