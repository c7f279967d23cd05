//! `echomesh-agent run` end to end: real agents (raw ICMP to 127.0.0.x only) streaming to an
//! in-process aggregator over real gRPC. Needs CAP_NET_RAW: without root the tests say so and skip.

mod support;

use std::time::Duration;

use echomesh_agent::report::{self, RunArgs};
use echomesh_aggregator::Graph;
use echomesh_proto::v1::EdgeState;
use echomesh_testkit::{TestAggregator, eventually, require_root};

use support::{POLL, Running, SOON};

/// An aggregator with fast probing and reporting on `grpc` (port 0 or a fixed one for restarts).
async fn start_agg(grpc: &str, debounce: Duration) -> TestAggregator {
    let grpc: std::net::SocketAddr = grpc.parse().expect("addr");
    TestAggregator::start(|cfg| {
        cfg.grpc_listen = grpc;
        cfg.probe_interval = Duration::from_millis(20);
        cfg.probe_timeout = Duration::from_millis(500);
        cfg.report_interval = Duration::from_millis(200);
        cfg.assign_debounce = debounce;
    })
    .await
}

fn start_agent(url: &str, node: &str, addr: &str) -> Running {
    let args = RunArgs {
        replay_buffer: 1000,
        ..support::run_args(url, node, addr)
    };
    Running::spawn(|shutdown| report::run(args, shutdown.wait()))
}

fn states(g: &Graph, node: &str) -> Vec<EdgeState> {
    g.agents()
        .iter()
        .filter(|a| &*a.key.node == node)
        .flat_map(|a| {
            a.slab
                .lock()
                .records
                .iter()
                .map(|r| r.state())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn sent_total(g: &Graph) -> u64 {
    g.agents()
        .iter()
        .flat_map(|a| {
            a.slab
                .lock()
                .records
                .iter()
                .map(|r| u64::from(r.sent_total))
                .collect::<Vec<_>>()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_agents_fill_the_graph_and_a_stopped_agent_goes_unknown() {
    require_root!("raw ICMP sockets");
    let agg = start_agg("127.0.0.1:0", Duration::from_millis(100)).await;
    let url = agg.url();
    let a = start_agent(&url, "a", "127.0.0.1");
    let b = start_agent(&url, "b", "127.0.0.2");
    let c = start_agent(&url, "c", "127.0.0.3");
    let g = agg.graph.clone();
    eventually("all six loopback edges UP", SOON, POLL, || async {
        ["a", "b", "c"].iter().all(|n| {
            let s = states(&g, n);
            s.len() == 2 && s.iter().all(|s| *s == EdgeState::Up)
        })
    })
    .await;
    // Real RTTs arrived.
    let rec = g.agents()[0].slab.lock().records[0];
    assert!(rec.rtt_quantile_ns(0.5).is_some());

    c.stop().await;
    eventually("c's edges UNKNOWN after it stopped", SOON, POLL, || async {
        states(&g, "c").iter().all(|s| *s == EdgeState::Unknown)
    })
    .await;
    a.stop().await;
    b.stop().await;
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_replayed_after_an_aggregator_restart() {
    require_root!("raw ICMP sockets");
    // A fixed port so the agents find the restarted aggregator at the same URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}");
    // A long debounce: both agents are back before the first assignment round.
    let agg = start_agg(&listen, Duration::from_millis(100)).await;
    let a = start_agent(&url, "a", "127.0.0.1");
    let b = start_agent(&url, "b", "127.0.0.2");
    let g = agg.graph.clone();
    eventually("first reports merged", SOON, POLL, || async {
        sent_total(&g) > 0
    })
    .await;
    agg.shutdown().await;
    // The last report each agent got merged into the old aggregator.
    let last_old: Vec<u64> = g
        .agents()
        .iter()
        .map(|x| x.slab.lock().last_seq())
        .collect();

    // Agents keep probing and buffering while the aggregator is away.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let agg2 = start_agg(&listen, Duration::from_millis(300)).await;
    let g2 = agg2.graph.clone();
    eventually(
        "both agents report to the new aggregator",
        SOON,
        POLL,
        || async {
            g2.agents().len() == 2 && g2.agents().iter().all(|x| x.slab.lock().last_seq() > 0)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // No gap: every sequence number after the last one the old aggregator merged reached the new
    // one (replays of reports whose acks were lost in the shutdown may add a few more).
    for (x, old) in g2.agents().iter().zip(&last_old) {
        let s = x.slab.lock();
        assert!(
            s.merged() >= s.last_seq() - old,
            "{}: merged {} reports, seq {} -> {}",
            x.key,
            s.merged(),
            old,
            s.last_seq()
        );
        // The outage alone is worth ~7 report windows (fewer only on a very loaded machine).
        assert!(s.last_seq() - old >= 5, "{} -> {}", old, s.last_seq());
    }
    a.stop().await;
    b.stop().await;
    agg2.shutdown().await;
}
