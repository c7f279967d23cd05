//! `echomesh-loadgen`: the aggregator benchmark — simulated agents over real gRPC on one machine.
//!
//! Modes:
//! - `throughput`: N agents (one HTTP/2 connection each) full-mesh, each sending reports as fast as
//!   acks allow (`--window` reports in flight); prints edge-updates/s and the server's CPU. With
//!   `--window` reports always in flight the ack latency is the queue those reports make, about
//!   agents × window / rate; `--rate R` paces each agent at R reports/s with one in flight
//!   instead, so the ack latency says whether the server keeps up with that load.
//! - `fixed`: the same agents at one report per second; prints server CPU, ack latency, GetEdge
//!   latency, Matrix time, with `--watchers` WatchEvents subscribers attached and 10 targets per
//!   agent flapping so there are state changes to deliver.
//! - `--secure` (throughput): the same over TLS with a shared agent token on every session.
//! - `scale`: a whole cluster (5,000 nodes by default) on the budget pinglist with scripted
//!   failures, timed from the moment of each ([`scale`]).
//! - `memory`: builds `--mem-agents` × `--mem-targets` edges in this process's graph store and
//!   prints RSS growth per edge and the merge cost per edge update.
//!
//! The server is the real `echomesh-aggregator` binary started as a child process (so its CPU and
//! memory are measured apart from the load generator). Reports are pre-encoded once per agent and
//! only the sequence number is written per message, so the load generator spends its CPU on
//! HTTP/2, not on building messages. No packets leave loopback; no ICMP is sent at all.
//!
//! It lives in the testkit because it is the aggregator's test rig at scale: it drives the real
//! protocol with the testkit's simulated-agent Hello, and no production crate should carry it.
#![forbid(unsafe_code)]

mod codec;
mod memory;
mod network;
mod readers;
mod scale;
mod secure;
mod server;
mod session;
mod stats;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, ValueEnum};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Edge updates per second with reports sent as fast as acks allow.
    Throughput,
    /// One report per second per agent, with readers attached.
    Fixed,
    /// Memory per edge of the graph store, in process.
    Memory,
    /// A simulated cluster with scripted failures (`bench/scale.sh`).
    Scale,
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
    /// How long to measure (`10s`, `1m`).
    #[arg(long, default_value = "10s", value_parser = echomesh_runtime::parse_duration)]
    duration: Duration,
    /// Reports in flight per agent (throughput mode).
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Throughput mode at a set pace instead: this many reports per second per agent, each
    /// sent once the previous one is acked (so the ack latency shows whether the server keeps up).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
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
    /// TLS on the gRPC port and a shared agent token on every session (throughput mode).
    #[arg(long)]
    secure: bool,
    /// Scale mode.
    #[command(flatten)]
    scale: scale::ScaleArgs,
}

/// A `--rate`: a positive, finite number of reports per second.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1000.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate: give reports per second per agent, above 0 and at most 1000"
        )),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.mode == Mode::Memory {
        return memory::run(&args);
    }
    if args.mode == Mode::Scale {
        return scale::run(&args.scale, args.server_bin.as_deref());
    }
    if args.agents < 2 {
        bail!("--agents must be at least 2");
    }
    if args.rate.is_some() && args.mode != Mode::Throughput {
        bail!("--rate is for --mode throughput (the fixed mode sends one report per second)");
    }
    if args.secure && args.mode != Mode::Throughput {
        bail!("--secure is for --mode throughput (the fixed mode's readers dial plaintext)");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(network::run(&args))
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn a_rate_is_a_positive_finite_number_of_reports_per_second() {
        assert_eq!(parse_rate("4.1"), Ok(4.1));
        for bad in ["0", "-1", "nan", "inf", "1001", "fast", ""] {
            let e = parse_rate(bad).expect_err(bad);
            assert!(e.contains("is not a rate"), "{bad}: {e}");
        }
    }
}
