//! `echomesh-loadgen`: the aggregator benchmark — simulated agents over real gRPC on one machine.
//!
//! Modes:
//! - `throughput`: N agents (one HTTP/2 connection each) full-mesh, each sending reports as fast as
//!   acks allow (`--window` reports in flight); prints edge-updates/s and the server's CPU.
//! - `fixed`: the same agents at one report per second; prints server CPU, ack latency, GetEdge
//!   latency, Matrix time, with `--watchers` WatchEvents subscribers attached and 10 targets per
//!   agent flapping so there are state changes to deliver.
//! - `memory`: builds `--mem-agents` × `--mem-targets` edges in this process's graph store and
//!   prints RSS growth per edge and the merge cost per edge update.
//!
//! The server is the real `echomesh-aggregator` binary started as a child process (so its CPU and
//! memory are measured apart from the load generator). Reports are pre-encoded once per agent and
//! only the sequence number is written per message, so the load generator spends its CPU on
//! HTTP/2, not on building messages. No packets leave loopback; no ICMP is sent at all.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use echomesh_aggregator::graph::EventHub;
use echomesh_aggregator::graph::{AgentInfo, AgentKey, Graph, GraphConfig, endpoint_id};
use echomesh_proto::Histogram;
use echomesh_proto::v1::{
    self, AgentMessage, AggregatorMessage, agent_message, aggregator_message,
    graph_service_client::GraphServiceClient,
};
use prost::Message as _;
use prost::bytes::{BufMut as _, Bytes};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Throughput,
    Fixed,
    Memory,
}

/// Aggregator load generator.
#[derive(Debug, Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Throughput)]
    mode: Mode,
    /// Simulated agents (full mesh: each has agents-1 targets).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Reports in flight per agent (throughput mode).
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// WatchEvents subscribers during the fixed-load run.
    #[arg(long, default_value_t = 8)]
    watchers: usize,
    /// Path of the echomesh-aggregator binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Agents in memory mode.
    #[arg(long, default_value_t = 2000)]
    mem_agents: usize,
    /// Targets per agent in memory mode.
    #[arg(long, default_value_t = 5000)]
    mem_targets: usize,
}

// ---------------------------------------------------------------------------------------------
// Raw codec: pre-encoded reports, only the sequence number written per message.

#[derive(Debug, Clone)]
enum Out {
    Raw(Bytes),
    Report { seq: u64, rest: Bytes },
}

#[derive(Debug, Clone, Default)]
struct RawCodec;
#[derive(Debug)]
struct RawEnc;
#[derive(Debug)]
struct MsgDec;

impl Codec for RawCodec {
    type Encode = Out;
    type Decode = AggregatorMessage;
    type Encoder = RawEnc;
    type Decoder = MsgDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> MsgDec {
        MsgDec
    }
}

impl Encoder for RawEnc {
    type Item = Out;
    type Error = tonic::Status;
    fn encode(&mut self, item: Out, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        match item {
            Out::Raw(b) => dst.put_slice(&b),
            Out::Report { seq, rest } => {
                // AgentMessage { report (field 2, len) { seq (field 1, varint), rest... } }
                let inner = 1 + prost::encoding::encoded_len_varint(seq) + rest.len();
                dst.put_u8(0x12);
                prost::encoding::encode_varint(inner as u64, dst);
                dst.put_u8(0x08);
                prost::encoding::encode_varint(seq, dst);
                dst.put_slice(&rest);
            }
        }
        Ok(())
    }
}

impl Decoder for MsgDec {
    type Item = AggregatorMessage;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<AggregatorMessage>, tonic::Status> {
        AggregatorMessage::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------

fn node_name(i: usize) -> String {
    format!("n{i:05}")
}

fn node_addr(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

/// A realistic report window: 10 probes at ~200-400 µs in 5 buckets.
fn window_histogram() -> Histogram {
    let mut h = Histogram::new();
    for us in [200u64, 220, 250, 250, 260, 300, 300, 310, 350, 400] {
        h.record(Duration::from_micros(us));
    }
    h
}

struct Session {
    tx: mpsc::Sender<Out>,
    rx: tonic::Streaming<AggregatorMessage>,
    rest: Bytes,
    /// The same report with the first [`FLAPPING`] targets fully lost.
    rest_lossy: Bytes,
    targets: usize,
}

/// Targets per agent that flap (5 s lost, 5 s fine) in the fixed-load run, so WatchEvents has
/// a steady stream of state changes to deliver while ingest is measured.
const FLAPPING: usize = 10;

async fn open_session(
    url: &str,
    i: usize,
    agents: usize,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> anyhow::Result<Session> {
    let ch = Channel::from_shared(url.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
        .context("connect")?;
    let mut grpc = tonic::client::Grpc::new(ch)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    grpc.ready().await.context("ready")?;
    let (tx, rx) = mpsc::channel::<Out>(64);
    let hello = AgentMessage {
        msg: Some(agent_message::Msg::Hello(v1::Hello {
            node: node_name(i),
            pod: String::new(),
            network: v1::Network::Pod as i32,
            addresses: vec![node_addr(i)],
            version: "loadgen".into(),
            boot_id: 1,
        })),
    };
    tx.send(Out::Raw(hello.encode_to_vec().into())).await?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/echomesh.v1.AgentService/Session");
    let mut rx_stream = grpc
        .streaming(tonic::Request::new(ReceiverStream::new(rx)), path, RawCodec)
        .await?
        .into_inner();
    // Connected: let the next agents connect while this one waits for the full pinglist.
    drop(permit);
    let want = agents - 1;
    let assignment = loop {
        let m = tokio::time::timeout(Duration::from_secs(120), rx_stream.message())
            .await
            .context("no assignment within 120s")??
            .context("session ended")?;
        if let Some(aggregator_message::Msg::Assignment(a)) = m.msg
            && a.targets.len() == want
        {
            break a;
        }
    };
    let wire = v1::Histogram::from(&window_histogram());
    let report = v1::Report {
        seq: 0,
        generation: assignment.generation,
        window_start_unix_ms: 0,
        window_ms: 1000,
        targets: assignment
            .targets
            .iter()
            .enumerate()
            .map(|(slot, t)| v1::TargetStats {
                target_id: t.id,
                slot: slot as u32,
                sent: 10,
                received: 10,
                lost: 0,
                rtt: Some(wire.clone()),
                ..v1::TargetStats::default()
            })
            .collect(),
    };
    let mut lossy = report.clone();
    for t in lossy.targets.iter_mut().take(FLAPPING) {
        t.received = 0;
        t.lost = t.sent;
        t.rtt = None;
    }
    Ok(Session {
        tx,
        rx: rx_stream,
        rest: report.encode_to_vec().into(),
        rest_lossy: lossy.encode_to_vec().into(),
        targets: want,
    })
}

#[derive(Debug, Default)]
struct AgentResult {
    acks: u64,
    edge_updates: u64,
    latencies_us: Vec<u32>,
}

/// Sends reports until `stop`: `window` in flight, or one per `period` when given.
async fn drive(
    mut s: Session,
    window: usize,
    period: Option<Duration>,
    phase: Duration,
    flap: bool,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<AgentResult> {
    let mut res = AgentResult::default();
    // Seq 1 was the warm-up report.
    let mut seq = 1u64;
    let mut sent_at = std::collections::VecDeque::new();
    match period {
        None => loop {
            while sent_at.len() < window && !stop.load(Ordering::Relaxed) {
                seq += 1;
                sent_at.push_back(Instant::now());
                s.tx.send(Out::Report {
                    seq,
                    rest: s.rest.clone(),
                })
                .await?;
            }
            if sent_at.is_empty() {
                return Ok(res);
            }
            let m = s.rx.message().await?.context("ended")?;
            if let Some(aggregator_message::Msg::Ack(_)) = m.msg {
                let t0 = sent_at.pop_front().context("ack without report")?;
                res.latencies_us
                    .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                res.acks += 1;
                res.edge_updates += s.targets as u64;
            }
        },
        Some(p) => {
            tokio::time::sleep(phase).await;
            let mut tick = tokio::time::interval(p);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                seq += 1;
                let t0 = Instant::now();
                let rest = if flap && (seq / 5) % 2 == 1 {
                    s.rest_lossy.clone()
                } else {
                    s.rest.clone()
                };
                s.tx.send(Out::Report { seq, rest }).await?;
                loop {
                    let m = s.rx.message().await?.context("ended")?;
                    if let Some(aggregator_message::Msg::Ack(_)) = m.msg {
                        break;
                    }
                }
                res.latencies_us
                    .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                res.acks += 1;
                res.edge_updates += s.targets as u64;
            }
            Ok(res)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings (Linux).

/// (utime + stime) of a process in seconds; assumes CLK_TCK = 100.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ut: f64 = f.get(11).context("utime")?.parse()?;
    let st: f64 = f.get(12).context("stime")?.parse()?;
    Ok((ut + st) / 100.0)
}

fn rss_bytes(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?;
    Ok(kb * 1024)
}

fn pct(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    f64::from(v[i])
}

// ---------------------------------------------------------------------------------------------

struct Server {
    child: tokio::process::Child,
    pid: String,
    url: String,
}

async fn start_server(args: &Args) -> anyhow::Result<Server> {
    let bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("echomesh-aggregator"),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let child = tokio::process::Command::new(&bin)
        .args([
            "--grpc-listen",
            &addr.to_string(),
            "--http-listen",
            "127.0.0.1:0",
            "--assign-debounce",
            "2s",
            "--report-interval",
            "1s",
            "--agent-ttl",
            "1h",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let pid = child.id().context("server pid")?.to_string();
    let url = format!("http://{addr}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(Server { child, pid, url });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("server did not listen on {addr}")
}

async fn connect_all(url: &str, n: usize) -> anyhow::Result<Vec<Session>> {
    let mut set = tokio::task::JoinSet::new();
    // Connect in batches so the handshakes do not all time out together.
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..n {
        let url = url.to_string();
        let sem = sem.clone();
        set.spawn(async move {
            let permit = sem.acquire_owned().await?;
            open_session(&url, i, n, permit).await.map(|s| (i, s))
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

async fn run_network(args: &Args) -> anyhow::Result<()> {
    let mut server = start_server(args).await?;
    let rss_idle = rss_bytes(&server.pid)?;
    let t0 = Instant::now();
    let sessions = connect_all(&server.url, args.agents).await?;
    let edges = sessions.iter().map(|s| s.targets).sum::<usize>();
    println!(
        "setup: {} agents x {} targets = {} edges connected and assigned in {:.1}s",
        args.agents,
        args.agents - 1,
        edges,
        t0.elapsed().as_secs_f64()
    );
    // Warm-up: one report per agent, acked, before anything is measured. The first report turns
    // every edge from UNKNOWN to UP (a million state changes at once); steady state is what the
    // goals are about.
    let mut warm = tokio::task::JoinSet::new();
    for (i, mut s) in sessions.into_iter().enumerate() {
        warm.spawn(async move {
            s.tx.send(Out::Report {
                seq: 1,
                rest: s.rest.clone(),
            })
            .await?;
            loop {
                let m = s.rx.message().await?.context("ended")?;
                if let Some(aggregator_message::Msg::Ack(_)) = m.msg {
                    break;
                }
            }
            anyhow::Ok((i, s))
        });
    }
    let mut sessions = Vec::with_capacity(args.agents);
    while let Some(r) = warm.join_next().await {
        sessions.push(r??);
    }
    sessions.sort_by_key(|(i, _)| *i);
    let sessions: Vec<Session> = sessions.into_iter().map(|(_, s)| s).collect();
    println!("warm-up: every agent's first report merged and acked");
    let stop = Arc::new(AtomicBool::new(false));
    let fixed = args.mode == Mode::Fixed;

    // Readers during the fixed-load run.
    let mut readers = tokio::task::JoinSet::new();
    let events = Arc::new(AtomicU64::new(0));
    if fixed {
        for _ in 0..args.watchers {
            let url = server.url.clone();
            let stop = stop.clone();
            let events = events.clone();
            readers.spawn(async move {
                let mut c = GraphServiceClient::connect(url).await?;
                let mut s = c
                    .watch_events(v1::WatchEventsRequest { snapshot: false })
                    .await?
                    .into_inner();
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(200), s.message()).await {
                        Ok(Ok(Some(_))) => {
                            events.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => break,
                        Err(_) => {}
                    }
                }
                anyhow::Ok(ReaderResult::default())
            });
        }
        let (url, stop2, n) = (server.url.clone(), stop.clone(), args.agents);
        readers.spawn(async move {
            let mut c = GraphServiceClient::connect(url).await?;
            let mut r = ReaderResult::default();
            let mut k = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                k += 1;
                let (src, dst) = (k * 7919 % n, (k * 104_729 + 1) % n);
                if src == dst {
                    continue;
                }
                let t = Instant::now();
                c.get_edge(v1::GetEdgeRequest {
                    source_node: node_name(src),
                    target: node_addr(dst),
                    ..Default::default()
                })
                .await?;
                r.get_edge_us.push(t.elapsed().as_micros() as u32);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            anyhow::Ok(r)
        });
        let (url, stop3) = (server.url.clone(), stop.clone());
        readers.spawn(async move {
            let mut c = GraphServiceClient::connect(url)
                .await?
                .max_decoding_message_size(256 << 20);
            let mut r = ReaderResult::default();
            while !stop3.load(Ordering::Relaxed) {
                let t = Instant::now();
                let m = c
                    .matrix(v1::MatrixRequest {
                        metric: v1::MatrixMetric::P99 as i32,
                        network: 0,
                    })
                    .await?
                    .into_inner();
                r.matrix_ms.push(t.elapsed().as_millis() as u32);
                r.matrix_n = m.nodes.len();
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            anyhow::Ok(r)
        });
    }

    let cpu0 = cpu_seconds(&server.pid)?;
    let self0 = cpu_seconds("self")?;
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let n = sessions.len();
    for (i, s) in sessions.into_iter().enumerate() {
        let stop = stop.clone();
        let period = fixed.then_some(Duration::from_secs(1));
        // Spread fixed-rate agents evenly over the second.
        let phase = Duration::from_micros((i as u64 * 1_000_000) / n as u64);
        set.spawn(drive(
            s,
            args.window,
            period,
            phase,
            args.watchers > 0,
            stop,
        ));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&server.pid)? - cpu0;
    let self_cpu = cpu_seconds("self")? - self0;
    let mut total = AgentResult::default();
    while let Some(r) = set.join_next().await {
        let r = r??;
        total.acks += r.acks;
        total.edge_updates += r.edge_updates;
        total.latencies_us.extend(r.latencies_us);
    }
    let rss = rss_bytes(&server.pid)?;
    let mode = if fixed {
        "fixed 1 report/s/agent"
    } else {
        "max (acks allow)"
    };
    println!(
        "{mode}: {:.2}M edge-updates/s ({:.0} reports/s) over {elapsed:.1}s",
        total.edge_updates as f64 / elapsed / 1e6,
        total.acks as f64 / elapsed
    );
    println!(
        "server CPU {:.2} cores, load generator CPU {:.2} cores (2-core machine)",
        cpu / elapsed,
        self_cpu / elapsed
    );
    println!(
        "ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&mut total.latencies_us, 0.5) / 1000.0,
        pct(&mut total.latencies_us, 0.99) / 1000.0,
        pct(&mut total.latencies_us, 1.0) / 1000.0
    );
    println!(
        "server RSS {:.1} MiB ({:.1} MiB idle): {:.0} B per edge all-in",
        rss as f64 / 1048576.0,
        rss_idle as f64 / 1048576.0,
        (rss.saturating_sub(rss_idle)) as f64 / edges as f64
    );
    if fixed {
        let mut get = Vec::new();
        let mut mat = Vec::new();
        let mut mat_n = 0;
        while let Some(r) = readers.join_next().await {
            let r = r??;
            get.extend(r.get_edge_us);
            mat.extend(r.matrix_ms);
            mat_n = mat_n.max(r.matrix_n);
        }
        println!(
            "GetEdge under load: {} calls, p50 {:.3} ms, p99 {:.3} ms",
            get.len(),
            pct(&mut get, 0.5) / 1000.0,
            pct(&mut get, 0.99) / 1000.0
        );
        println!(
            "Matrix {mat_n}x{mat_n} under load: {} calls, median {} ms, max {} ms",
            mat.len(),
            pct(&mut mat, 0.5),
            pct(&mut mat, 1.0)
        );
        println!(
            "WatchEvents: {} subscribers attached, {FLAPPING} targets per agent flapping (5 s lost, 5 s fine): {} events delivered",
            args.watchers,
            events.load(Ordering::Relaxed)
        );
    }
    let _ = server.child.start_kill();
    let _ = server.child.wait().await;
    Ok(())
}

#[derive(Debug, Default)]
struct ReaderResult {
    get_edge_us: Vec<u32>,
    matrix_ms: Vec<u32>,
    matrix_n: usize,
}

fn run_memory(args: &Args) -> anyhow::Result<()> {
    let (na, nt) = (args.mem_agents, args.mem_targets);
    let rss0 = rss_bytes("self")?;
    let graph = Graph::new(GraphConfig::default(), EventHub::new(16, 1));
    let mut agents = Vec::with_capacity(na);
    for i in 0..na {
        let addr = node_addr(i).parse()?;
        let key = AgentKey {
            node: node_name(i).into(),
            network: v1::Network::Pod,
        };
        let a = graph.upsert_agent(
            key,
            AgentInfo {
                addresses: vec![addr],
                boot_id: 1,
                connected: true,
                ..AgentInfo::default()
            },
        );
        let ids: Vec<u64> = (0..nt)
            .map(|t| endpoint_id(&node_name(t), v1::Network::Pod, addr))
            .collect();
        graph.apply_assignment(&a, 1, &ids, Duration::from_secs(1));
        agents.push(a);
    }
    let rss1 = rss_bytes("self")?;
    // One report per agent: every record touched, sketches filled.
    let wire = v1::Histogram::from(&window_histogram());
    let mut merge_ns = 0u128;
    for a in &agents {
        let report = v1::Report {
            seq: 1,
            generation: 1,
            window_start_unix_ms: 0,
            window_ms: 1000,
            targets: echomesh_aggregator::graph::Graph::assigned_ids(a)
                .into_iter()
                .enumerate()
                .map(|(slot, id)| v1::TargetStats {
                    target_id: id,
                    slot: slot as u32,
                    sent: 10,
                    received: 10,
                    rtt: Some(wire.clone()),
                    ..v1::TargetStats::default()
                })
                .collect(),
        };
        let t = Instant::now();
        graph.merge_report(a, &report)?;
        merge_ns += t.elapsed().as_nanos();
    }
    let rss2 = rss_bytes("self")?;
    let edges = (na * nt) as f64;
    println!(
        "memory: {na} agents x {nt} targets = {:.1}M edges; EdgeRecord = {} B",
        edges / 1e6,
        std::mem::size_of::<echomesh_aggregator::graph::EdgeRecord>()
    );
    println!(
        "RSS growth: {:.0} B per edge after assignment, {:.0} B per edge after one report each ({:.0} MiB total)",
        (rss1 - rss0) as f64 / edges,
        (rss2.max(rss1) - rss0) as f64 / edges,
        (rss2.max(rss1) - rss0) as f64 / 1048576.0
    );
    println!(
        "merge (graph only, no gRPC): {:.1} ns per edge update",
        merge_ns as f64 / edges
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.mode == Mode::Memory {
        return run_memory(&args);
    }
    if args.agents < 2 {
        bail!("--agents must be at least 2");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_network(&args))
}
