//! `echomesh-agent`: parse flags, set up logging, run the subcommand.
//!
//! The binary is only the edge: every subcommand is a library function taking a shutdown future,
//! so tests drive the same code without signals or a process.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use echomesh_agent::probe::{self, ProbeArgs};
use echomesh_agent::report::{self, RunArgs};
use echomesh_runtime::shutdown;
use echomesh_runtime::telemetry::{self, LogFormat};

/// echomesh node agent: raw-socket ICMP prober.
#[derive(Debug, Parser)]
#[command(name = "echomesh-agent", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, env = "ECHOMESH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Log filter (e.g. `info`, `echomesh_agent=debug`).
    #[arg(long, env = "ECHOMESH_LOG", default_value = "warn", global = true)]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Probe targets a fixed number of times and print per-target results (like fping).
    Probe(ProbeArgs),
    /// Probe the aggregator's assignment and stream reports to it until stopped.
    Run(RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echomesh-agent: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Probe(args) => match runtime.block_on(probe::run(args, shutdown::signal())) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("echomesh-agent: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run(args) => match runtime.block_on(report::run(args, shutdown::signal())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echomesh-agent: {e}");
                ExitCode::from(2)
            }
        },
    }
}
