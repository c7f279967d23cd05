//! `echomesh-agent probe`: the engine as a one-shot command, like fping but with kernel
//! timestamps, real percentiles and no 16-bit sequence ceiling.
//!
//! Exit status follows fping so scripts can swap one for the other: 0 when every probe was
//! answered, 1 when any was lost, 2 for usage and permission errors.

mod output;
pub mod targets;

use std::future::Future;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use echomesh_runtime::parse_duration;

use crate::prober::{self, EngineError, ProbeSettings, TargetSpec};
pub use output::{JsonRow, RttUs, exit_status, json_rows, summary_line, write_table};
use targets::TargetError;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table, RTTs in milliseconds.
    Table,
    /// One JSON array, RTTs in microseconds.
    Json,
}

/// Arguments of `echomesh-agent probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// Probes per target.
    #[arg(short = 'c', long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Time between two probes to the same target, e.g. `100ms` (targets are spread evenly
    /// within it).
    #[arg(short = 'i', long, value_name = "DURATION", default_value = "1s", value_parser = nonzero_duration)]
    pub interval: Duration,
    /// How long to wait for a reply before a probe counts as lost, e.g. `500ms`.
    #[arg(short = 't', long, value_name = "DURATION", default_value = "1s", value_parser = nonzero_duration)]
    pub timeout: Duration,
    /// Payload bytes after the ICMP header (32..=65507; sent with don't-fragment).
    #[arg(short = 's', long = "size", default_value_t = 56)]
    pub size: usize,
    /// Read targets from FILE, one address or CIDR per line.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Addresses or CIDRs to probe (a CIDR expands to at most 65536 addresses).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
}

/// A duration flag that must be greater than zero: a zero interval would send without pause and
/// a zero timeout would count every probe as lost.
fn nonzero_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?} must be greater than zero")),
        d => Ok(d),
    }
}

/// Why `probe` could not run (all exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Bad target list.
    #[error(transparent)]
    Targets(#[from] TargetError),
    /// Engine could not start (permissions, settings).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Output could not be written.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs `probe`; returns the exit status on success.
pub async fn run(args: ProbeArgs, shutdown: impl Future<Output = ()>) -> Result<u8, ProbeError> {
    let addrs: Vec<IpAddr> = targets::collect(&args.targets, args.file.as_deref())?;
    let settings = ProbeSettings {
        interval: args.interval,
        timeout: args.timeout,
        payload_size: args.size,
        ..ProbeSettings::default()
    };
    settings.validate()?;
    let specs = addrs
        .iter()
        .enumerate()
        .map(|(i, &addr)| TargetSpec { id: i as u64, addr })
        .collect();
    let started = Instant::now();
    let outcome = prober::run_bounded(settings, specs, args.count, shutdown).await?;
    let elapsed = started.elapsed();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.output {
        Format::Table => write_table(&mut out, &outcome)?,
        Format::Json => {
            serde_json::to_writer(&mut out, &json_rows(&outcome)).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    eprintln!("{}", summary_line(&outcome, elapsed));
    Ok(exit_status(&outcome))
}
