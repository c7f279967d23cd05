//! `echomesh-authbench`: how long 1,000 agents take to be authenticated and assigned, first at
//! start and again after an aggregator restart, with every token verified by a TokenReview.
//!
//! Why a bench and not a test: the figure depends on the machine. The aggregator runs in process
//! with Kubernetes discovery against the testkit's mocked API server (one node and one agent pod
//! per agent) and agent authentication against the mocked TokenReview endpoint, which answers
//! after `--review-latency` (an API server's round trip). Each simulated agent opens a real gRPC
//! session with its own pod's token, retries while discovery has not listed the cluster yet
//! (`UNAVAILABLE`), and counts as done when its first assignment arrives. The restart is a new
//! aggregator on the same mocks: its verdict cache is empty, so every token is reviewed again.
//! Loopback only; no ICMP.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use echomesh_proto::v1::{self, Network, aggregator_message};
use echomesh_testkit::k8s::fixtures;
use echomesh_testkit::k8s::mock_api::MockApi;
use echomesh_testkit::k8s::token_review::MockTokenReview;
use echomesh_testkit::{SimAgent, TestAggregator};

/// Authentication bench.
#[derive(Debug, Parser)]
struct Args {
    /// Simulated agents (one node and one pod-network agent pod each).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Latency of each TokenReview answer.
    #[arg(long, default_value = "20ms", value_parser = echomesh_runtime::parse_duration)]
    review_latency: Duration,
    /// Sessions opened at once (real agents spread reconnects with jittered backoff).
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
}

fn pod_ip(i: usize) -> String {
    format!("10.244.{}.{}", i / 200, i % 200 + 10)
}

fn node_ip(i: usize) -> String {
    format!("10.0.{}.{}", i / 200, i % 200 + 10)
}

/// Opens agent `i`'s session until it is assigned; returns the session (kept open).
async fn join(agg: Arc<TestAggregator>, i: usize) -> anyhow::Result<SimAgent> {
    let node = format!("n{i}");
    let mut hello = echomesh_testkit::sim::hello(&node, Network::Pod, &pod_ip(i));
    hello.pod = format!("echomesh-agent-pod-{node}");
    let first = v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::Hello(hello)),
    };
    let token = format!("token-{i}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ch = agg.channel().await;
        let mut a = SimAgent::open_with_token(ch, first.clone(), Some(&token)).await?;
        loop {
            match a.next_within(Duration::from_secs(60)).await {
                Some(Ok(Some(m))) => {
                    if let Some(aggregator_message::Msg::Assignment(_)) = m.msg {
                        return Ok(a);
                    }
                }
                Some(Err(st)) if st.code() == tonic::Code::Unavailable => break,
                Some(Err(st)) => bail!("agent {i} refused: {st}"),
                Some(Ok(None)) | None => bail!("agent {i}: no assignment"),
            }
        }
        if Instant::now() > deadline {
            bail!("agent {i}: still unavailable after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Joins every agent, `concurrency` at a time; returns the sessions and the time taken.
async fn join_all(
    agg: &Arc<TestAggregator>,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<SimAgent>, Duration)> {
    let t0 = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (agg, sem) = (agg.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            join(agg, i).await
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        out.push(r.context("join task")??);
    }
    Ok((out, t0.elapsed()))
}

async fn start(api_client: kube::Client, review_client: kube::Client) -> Arc<TestAggregator> {
    Arc::new(
        TestAggregator::start_with_token_review(api_client, review_client, |c| {
            c.assign_debounce = Duration::from_millis(200);
            c.max_agents = c.max_agents.max(10_000);
        })
        .await,
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.agents < 2 || args.concurrency == 0 {
        bail!("--agents must be at least 2 and --concurrency at least 1");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(&args))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let n = args.agents;
    let nodes: Vec<_> = (0..n)
        .map(|i| fixtures::node(&format!("n{i}"), &[&node_ip(i)]))
        .collect();
    let pods: Vec<_> = (0..n)
        .map(|i| fixtures::agent_pod(&format!("n{i}"), false, &[&pod_ip(i)]))
        .collect();
    let (_api, api_client) = MockApi::start(nodes, pods);
    let (review, review_client) = MockTokenReview::start();
    review.set_latency(args.review_latency);
    for i in 0..n {
        review.issue(
            &format!("token-{i}"),
            &format!("echomesh-agent-pod-n{i}"),
            &format!("n{i}"),
        );
    }
    println!(
        "{n} agents, TokenReview latency {:?}, {} sessions opened at once",
        args.review_latency, args.concurrency
    );
    let agg = start(api_client.clone(), review_client.clone()).await;
    let (sessions, first) = join_all(&agg, n, args.concurrency).await?;
    println!(
        "start:   {n} agents authenticated and assigned in {:.2} s ({} TokenReviews)",
        first.as_secs_f64(),
        review.reviews()
    );
    drop(sessions);
    let before = review.reviews();
    match Arc::try_unwrap(agg) {
        Ok(a) => a.shutdown().await,
        Err(_) => bail!("aggregator still shared"),
    }
    let agg = start(api_client, review_client).await;
    let (_sessions, again) = join_all(&agg, n, args.concurrency).await?;
    println!(
        "restart: {n} agents authenticated and assigned in {:.2} s ({} TokenReviews, empty cache)",
        again.as_secs_f64(),
        review.reviews() - before
    );
    Ok(())
}
