//! The network modes: simulated agents report over real gRPC to the aggregator child process.
//!
//! A warm-up report per agent comes first, because the first report turns every edge from
//! UNKNOWN to UP at once and steady state is what the figures are about.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use echomesh_proto::v1::aggregator_message;
use echomesh_runtime::procfs::Proc;

use crate::codec::Out;
use crate::readers;
use crate::server::{cpu_seconds, rss_bytes, start_server};
use crate::session::{AgentResult, Session, connect_all, drive};
use crate::stats::pct;
use crate::workload::FLAPPING;
use crate::{Args, Mode};

/// The `throughput` and `fixed` modes.
pub(crate) async fn run(args: &Args) -> anyhow::Result<()> {
    let secure = args
        .secure
        .then(crate::secure::Secure::new)
        .transpose()?
        .map(Arc::new);
    let mut server = start_server(args.server_bin.as_deref(), secure.as_deref()).await?;
    let rss_idle = rss_bytes(Proc::Pid(server.pid))?;
    let t0 = Instant::now();
    let sessions = connect_all(&server.url, args.agents, secure.clone()).await?;
    let edges = sessions.iter().map(|s| s.targets).sum::<usize>();
    if secure.is_some() {
        println!("secure: TLS on the gRPC port, every session authenticated with the agent token");
    }
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
    let events = Arc::new(AtomicU64::new(0));
    let mut readers = if fixed {
        readers::spawn(&server.url, args.agents, args.watchers, &stop, &events)
    } else {
        tokio::task::JoinSet::new()
    };

    let cpu0 = cpu_seconds(Proc::Pid(server.pid))?;
    let self0 = cpu_seconds(Proc::Current)?;
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let n = sessions.len();
    for (i, s) in sessions.into_iter().enumerate() {
        let stop = stop.clone();
        let period = if fixed {
            Some(Duration::from_secs(1))
        } else {
            args.rate.map(|r| Duration::from_secs_f64(1.0 / r))
        };
        // Spread paced agents evenly over their period.
        let phase = period.map_or(Duration::ZERO, |p| p.mul_f64(i as f64 / n as f64));
        set.spawn(drive(
            s,
            args.window,
            period,
            phase,
            fixed && args.watchers > 0,
            stop,
        ));
    }
    tokio::time::sleep(args.duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(Proc::Pid(server.pid))? - cpu0;
    let self_cpu = cpu_seconds(Proc::Current)? - self0;
    let mut total = AgentResult::default();
    while let Some(r) = set.join_next().await {
        let r = r??;
        total.acks += r.acks;
        total.edge_updates += r.edge_updates;
        total.latencies_us.extend(r.latencies_us);
    }
    let rss = rss_bytes(Proc::Pid(server.pid))?;
    let mode = match (fixed, args.rate) {
        (true, _) => "fixed 1 report/s/agent".to_string(),
        (false, Some(r)) => format!(
            "paced {r} reports/s/agent ({:.2}M edge-updates/s offered)",
            r * edges as f64 / 1e6
        ),
        (false, None) => "max (acks allow)".to_string(),
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
