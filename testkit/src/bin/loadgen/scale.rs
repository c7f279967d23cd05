//! `--mode scale`: a whole cluster simulated against one real aggregator — by default 5,000 nodes
//! (10,000 agent sessions, pod and host network) in zones of 500 — with scripted failures, each
//! timed from the moment it happens.
//!
//! Why a simulation and not the lab: the lab's network namespaces give real packets but a few
//! dozen nodes; the questions at 5,000 nodes are the aggregator's (memory, CPU, how fast a verdict
//! forms, how many bytes a membership change costs), and those only need the real protocol. The
//! simulated agents answer from a model of the network ([`truth`]) instead of probing, report
//! every second for exactly their assigned targets, and send an alert per target that flips, as
//! real agents do. No packet leaves loopback and no ICMP is sent.
//!
//! The run: connect everything and wait for every list; measure steady state; then a node
//! vanishes, a zone partitions, 5 % of the nodes restart, a node joins while another leaves; then
//! check that every directed pair was in some list within the policy's coverage cycle. Misbehaving
//! sessions (never reading, sending garbage) run beside it all. Every figure is printed beside its
//! goal at the end.

mod agent;
mod cluster;
mod codec;
mod events;
mod look;
mod rogue;
mod server;
mod truth;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use echomesh_runtime::procfs::Proc;

use crate::server::{cpu_seconds, rss_bytes};
use crate::stats::pct;
use cluster::{Cluster, PER_NODE};

/// The scale mode's options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ScaleArgs {
    /// Simulated nodes (two agent sessions each: pod and host network).
    #[arg(long, default_value_t = 5000)]
    pub(crate) nodes: usize,
    /// Nodes per zone (zone-a, zone-b, ...).
    #[arg(long, default_value_t = 500)]
    pub(crate) zone_size: usize,
    /// The aggregator's --pinglist: budget or full-mesh.
    #[arg(long, default_value = "budget", value_parser = ["budget", "full-mesh"])]
    pub(crate) pinglist: String,
    /// The aggregator's --coverage-period; the coverage check waits one cycle, so a short one
    /// (with --nodes to match) ends the run in minutes.
    #[arg(long, default_value = "15m", value_parser = echomesh_runtime::parse_duration)]
    pub(crate) coverage_period: Duration,
    /// How long the steady state is measured.
    #[arg(long, default_value = "20s", value_parser = echomesh_runtime::parse_duration)]
    pub(crate) steady: Duration,
    /// Misbehaving sessions of each kind (never reading; sending garbage).
    #[arg(long, default_value_t = 2)]
    pub(crate) rogues: usize,
    /// Skip waiting for the coverage cycle (no coverage figure).
    #[arg(long)]
    pub(crate) no_coverage: bool,
}

/// One printed figure.
pub(crate) struct Figure {
    name: &'static str,
    value: String,
    goal: &'static str,
}

/// The figures of a run, printed together at the end.
#[derive(Default)]
pub(crate) struct Figures(Vec<Figure>);

impl Figures {
    /// Adds a figure and prints it now too.
    pub(crate) fn add(&mut self, name: &'static str, value: String, goal: &'static str) {
        println!("  {name}: {value} (goal {goal})");
        self.0.push(Figure { name, value, goal });
    }
}

/// Runs the simulation.
pub(crate) fn run(args: &ScaleArgs, server_bin: Option<&Path>) -> anyhow::Result<()> {
    check(args)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(simulate(args, server_bin))
}

/// Refuses sizes the event script cannot run on.
fn check(args: &ScaleArgs) -> anyhow::Result<()> {
    if !(20..=30_000).contains(&args.nodes) {
        bail!(
            "--nodes must be within 20..=30000 (the events need room; the coverage bitmap grows with the square), got {}",
            args.nodes
        );
    }
    if args.zone_size == 0 || args.zone_size >= args.nodes {
        bail!(
            "--zone-size must be within 1..{} so there are at least two zones, got {}",
            args.nodes,
            args.zone_size
        );
    }
    Ok(())
}

async fn simulate(args: &ScaleArgs, server_bin: Option<&Path>) -> anyhow::Result<()> {
    let agents = args.nodes * PER_NODE;
    let mut agg = server::start(
        server_bin,
        &server::Flags {
            pinglist: &args.pinglist,
            coverage_period: args.coverage_period,
            agents,
        },
    )
    .await?;
    println!(
        "scale: {} nodes ({agents} agent sessions) in zones of {}, --pinglist {}, --coverage-period {:?}",
        args.nodes, args.zone_size, args.pinglist, args.coverage_period
    );
    let rss_idle = rss_bytes(Proc::Pid(agg.pid))?;
    // Streams per connection stay under the aggregator's 64.
    let conns = agents.div_ceil(48);
    let mut pool = Vec::with_capacity(conns);
    for _ in 0..conns {
        pool.push(
            echomesh_proto::url::AggregatorUrl::parse(&agg.url)?
                .connect_with(Duration::from_secs(30), None, None)
                .await
                .context("connect")?,
        );
    }
    let cluster = Arc::new(Cluster::new(
        args.nodes,
        args.zone_size,
        pool,
        agg.authorization.clone(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let rogue_counts = Arc::new(rogue::RogueCounts::default());
    let mut rogues = rogue::spawn(
        &agg.url,
        &agg.authorization,
        args.rogues,
        &stop,
        &rogue_counts,
    );

    let t0 = Instant::now();
    let mut tasks: Vec<Option<tokio::task::JoinHandle<()>>> =
        (0..cluster.agents).map(|_| None).collect();
    for (a, task) in tasks.iter_mut().take(agents).enumerate() {
        *task = Some(tokio::spawn(agent::run(cluster.clone(), a, 1, None)));
        // 2,500 Hellos a second: a cluster's agents do not all start in the same instant.
        if a % 250 == 249 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut next_note = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = (0..agents).filter(|&a| cluster.list(a).is_empty()).count();
        if waiting == 0 {
            break;
        }
        if Instant::now() > next_note {
            next_note += Duration::from_secs(10);
            println!(
                "  {:.0}s: {} of {agents} assigned, {} assignments received, {} session errors{}",
                t0.elapsed().as_secs_f64(),
                agents - waiting,
                cluster.assign.snapshot()[0],
                cluster.session_errors.load(Ordering::Relaxed),
                cluster
                    .first_errors
                    .lock()
                    .first()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{waiting} agents without an assignment after 600 s; first errors: {:?}",
                cluster.first_errors.lock()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let setup = t0.elapsed();
    let targets: usize = (0..agents).map(|a| cluster.list(a).len()).sum();
    println!(
        "setup: {agents} sessions connected and assigned in {:.1}s, {:.0} targets per agent on average",
        setup.as_secs_f64(),
        targets as f64 / agents as f64
    );
    cluster.reset_coverage();
    let coverage_start = Instant::now();
    let mut figs = Figures::default();
    let mut c = look::reader(&agg.url).await?;

    // Steady state, after every edge had time to come UP.
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!("== steady state ({:?})", args.steady);
    println!("load: {}", uptime());
    let cpu0 = cpu_seconds(Proc::Pid(agg.pid))?;
    let self0 = cpu_seconds(Proc::Current)?;
    let (acks0, entries0) = (
        cluster.acks.load(Ordering::Relaxed),
        cluster.entries.load(Ordering::Relaxed),
    );
    let get_stop = Arc::new(AtomicBool::new(false));
    let getter = look::get_edge_loop(&agg.url, cluster.clone(), get_stop.clone());
    cluster.recording.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(args.steady).await;
    cluster.recording.store(false, Ordering::Relaxed);
    get_stop.store(true, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(Proc::Pid(agg.pid))? - cpu0) / secs;
    let self_cpu = (cpu_seconds(Proc::Current)? - self0) / secs;
    let rss = rss_bytes(Proc::Pid(agg.pid))?;
    let mut acks = std::mem::take(&mut *cluster.ack_us.lock());
    let mut gets = getter.await??;
    let reports = (cluster.acks.load(Ordering::Relaxed) - acks0) as f64 / secs;
    let updates = (cluster.entries.load(Ordering::Relaxed) - entries0) as f64 / secs;
    let s = look::summary(&mut c).await?;
    println!(
        "  {reports:.0} reports/s, {:.2}M edge-updates/s; graph: {} edges ({} up, {} down, {} unknown); load generator CPU {self_cpu:.2} cores",
        updates / 1e6,
        s.edges,
        s.edges_up,
        s.edges_down,
        s.edges_unknown
    );
    figs.add(
        "server RSS",
        format!(
            "{:.0} MiB ({:.0} MiB idle)",
            rss as f64 / 1048576.0,
            rss_idle as f64 / 1048576.0
        ),
        "<= 2048 MiB",
    );
    figs.add(
        "server CPU",
        format!("{cpu:.2} cores (2-core machine, load generator on the same cores)"),
        "<= 1.5 cores",
    );
    figs.add(
        "ack p99",
        format!(
            "{:.1} ms (p50 {:.1} ms, {} acks)",
            pct(&mut acks, 0.99) / 1000.0,
            pct(&mut acks, 0.5) / 1000.0,
            acks.len()
        ),
        "<= 50 ms",
    );
    figs.add(
        "GetEdge p99 steady",
        format!(
            "{:.2} ms ({} calls)",
            pct(&mut gets, 0.99) / 1000.0,
            gets.len()
        ),
        "< 10 ms",
    );
    let cov = c
        .coverage(echomesh_proto::v1::CoverageRequest {
            limit: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let fewest = cov.agents.first().map_or(0, |a| a.fast_probers);
    println!(
        "  coverage plan: policy {}, cycle {:.0}s, epoch {:.1}s, fewest fast probers {fewest} of {} wanted, {} agents",
        cov.policy,
        cov.cycle_ms as f64 / 1000.0,
        cov.epoch_ms as f64 / 1000.0,
        cov.fast_probers_wanted,
        cov.agents_total
    );

    let ev = events::Events {
        cluster: cluster.clone(),
        url: agg.url.clone(),
        fast_probers: cov.fast_probers_wanted.max(1) as usize,
    };
    let left = ev.run_all(&mut c, &mut tasks, &mut figs).await?;

    // Coverage: every directed pair between the agents present all along was in some list.
    if args.no_coverage {
        println!("== coverage: skipped (--no-coverage)");
    } else {
        let cycle = Duration::from_millis(cov.cycle_ms);
        let until = coverage_start + cycle + Duration::from_secs(15);
        let wait = until.saturating_duration_since(Instant::now());
        println!(
            "== coverage: waiting {:.0}s more, to the end of the {:.0}s cycle (+15 s)",
            wait.as_secs_f64(),
            cycle.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
        let members: Vec<usize> = (0..agents).filter(|a| a / PER_NODE != left).collect();
        let cc = cluster.coverage(&members);
        let missing = if cc.examples.is_empty() {
            String::new()
        } else {
            format!(
                "; {} sources missed some, at most {} each, e.g. agent pairs {:?}",
                cc.sources_missing, cc.most_missing, cc.examples
            )
        };
        figs.add(
            "coverage",
            format!(
                "{} of {} directed pairs probed within {:.0}s{missing}",
                cc.hit,
                cc.total,
                coverage_start.elapsed().as_secs_f64(),
            ),
            "every pair within the coverage period",
        );
    }

    println!("== misbehaving sessions");
    stop.store(true, Ordering::Relaxed);
    println!(
        "  {} never reading, {} sending garbage: {} garbage messages sent, {} refused by the aggregator (first: {})",
        args.rogues,
        args.rogues,
        rogue_counts.garbage_sent.load(Ordering::Relaxed),
        rogue_counts.garbage_refused.load(Ordering::Relaxed),
        rogue_counts.garbage_status.lock()
    );
    for line in rogue::refusal_counters(agg.http).await {
        println!("  aggregator: {line}");
    }
    println!(
        "  simulated agents: {} session errors{}",
        cluster.session_errors.load(Ordering::Relaxed),
        match cluster.first_errors.lock().first() {
            Some(e) => format!(" (first: {e})"),
            None => String::new(),
        }
    );
    rogues.abort_all();
    for t in tasks.iter().flatten() {
        t.abort();
    }

    println!(
        "== figures: {} nodes, --pinglist {}",
        args.nodes, args.pinglist
    );
    for f in &figs.0 {
        println!("FIGURE|{}|{}|{}", f.name, f.value, f.goal);
    }
    let _ = agg.child.start_kill();
    let _ = agg.child.wait().await;
    Ok(())
}

/// `uptime`'s load averages (the machine is shared; figures need it beside them).
fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: usize, zone_size: usize) -> ScaleArgs {
        ScaleArgs {
            nodes,
            zone_size,
            pinglist: "budget".into(),
            coverage_period: Duration::from_secs(300),
            steady: Duration::from_secs(20),
            rogues: 2,
            no_coverage: false,
        }
    }

    #[test]
    fn sizes_the_script_cannot_run_on_are_refused() {
        assert!(check(&args(5000, 500)).is_ok());
        let e = |n, z| check(&args(n, z)).expect_err("refused").to_string();
        assert!(
            e(10, 5).starts_with("--nodes must be within 20..=30000"),
            "{}",
            e(10, 5)
        );
        assert_eq!(
            e(100, 100),
            "--zone-size must be within 1..100 so there are at least two zones, got 100"
        );
        assert!(e(100, 0).contains("got 0"));
    }
}
