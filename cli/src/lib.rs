//! `echomesh`: the command line over `GraphService`.
//!
//! Modules:
//! - [`connect`]: aggregator URLs (`http://HOST:PORT`, `unix:///path`) to a gRPC channel.
//! - [`render`]: tables, wide tables and JSON; colours only on a terminal.
//! - [`commands`]: one function per subcommand, writing to any `io::Write` so tests read the output.
//!
//! Exit codes are part of the interface (made for cron and CI): 0 fine, 1 `check` found edges
//! outside the limits, 2 the aggregator could not be reached or the request was refused.
#![forbid(unsafe_code)]

pub mod commands;
pub mod connect;
pub mod render;

use std::io::Write;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use echomesh_proto::v1::Network;

/// Exit code: everything within limits.
pub const EXIT_OK: i32 = 0;
/// Exit code: `check` found edges outside the limits.
pub const EXIT_VIOLATIONS: i32 = 1;
/// Exit code: the aggregator could not be reached, or refused the request.
pub const EXIT_UNREACHABLE: i32 = 2;

/// `echomesh` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "echomesh",
    version,
    about = "Query the echomesh aggregator: the cluster's live connectivity graph"
)]
pub struct Cli {
    /// Aggregator URL: http://HOST:PORT or unix:///path/to/socket.
    #[arg(
        long,
        global = true,
        env = "ECHOMESH_AGGREGATOR",
        default_value = "http://127.0.0.1:7070"
    )]
    pub aggregator: String,
    /// Output format.
    #[arg(short = 'o', long, global = true, env = "ECHOMESH_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// How long to wait for the aggregator (`5s`, `500ms`).
    #[arg(long, global = true, env = "ECHOMESH_TIMEOUT", default_value = "5s",
          value_parser = echomesh_runtime::parse_duration)]
    pub timeout: Duration,
    /// What to show.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// More columns.
    Wide,
    /// One JSON document.
    Json,
}

/// Matrix / sort metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    /// Loss over the last minute, percent.
    Loss,
    /// Median RTT.
    P50,
    /// 99th percentile RTT.
    P99,
}

/// Edge states for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Healthy.
    Up,
    /// Lossy or slow.
    Degraded,
    /// Unreachable.
    Down,
    /// No fresh data.
    Unknown,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Cluster summary: agents, edges per state.
    Status,
    /// Agents (node and network) with their edge counts.
    Nodes,
    /// Edges, filtered and sorted.
    Edges {
        /// Source node.
        #[arg(long)]
        from: Option<String>,
        /// Target node.
        #[arg(long)]
        to: Option<String>,
        /// Source network: pod, host or any.
        #[arg(long, value_name = "pod|host|any")]
        network: Option<Network>,
        /// Only these states (repeat or comma-separate).
        #[arg(long, value_enum, value_delimiter = ',')]
        state: Vec<StateArg>,
        /// Only edges with at least this loss (percent, last minute).
        #[arg(long)]
        min_loss: Option<f64>,
        /// Only edges with p99 at least this (milliseconds).
        #[arg(long)]
        min_p99: Option<f64>,
        /// Sort order (worst first).
        #[arg(long, value_enum)]
        sort: Option<Metric>,
        /// Most edges to show.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// One edge in detail.
    Edge {
        /// Source node.
        src: String,
        /// Target node or address.
        dst: String,
    },
    /// The N×N grid of a metric between nodes.
    Matrix {
        /// What each cell shows.
        #[arg(long, value_enum, default_value_t = Metric::Loss)]
        metric: Metric,
        /// Only this network: pod, host or any.
        #[arg(long, value_name = "pod|host|any")]
        network: Option<Network>,
    },
    /// The worst edges.
    Top {
        /// How many.
        #[arg(short = 'n', default_value_t = 10)]
        n: u32,
        /// Worst by what.
        #[arg(long, value_enum, default_value_t = Metric::Loss)]
        by: Metric,
    },
    /// Stream state changes as they happen.
    Watch {
        /// Start with the current state of every edge.
        #[arg(long)]
        snapshot: bool,
    },
    /// Exit 0 when every known edge is within the limits, 1 otherwise (listing them), 2 when the
    /// aggregator cannot be reached.
    Check {
        /// Largest acceptable loss over the last minute, percent.
        #[arg(long, default_value_t = 1.0)]
        max_loss: f64,
        /// Largest acceptable p99 RTT, milliseconds.
        #[arg(long)]
        max_p99: Option<f64>,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The URL is not usable.
    #[error("{0}")]
    Url(String),
    /// Could not connect.
    #[error("cannot reach the aggregator at {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// Transport error.
        source: tonic::transport::Error,
    },
    /// The aggregator answered with an error.
    #[error("aggregator: {}: {}", .0.code(), .0.message())]
    Rpc(#[from] tonic::Status),
    /// Writing output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs `cli`, writing to `out`; returns the exit code.
pub async fn run(cli: &Cli, out: &mut (dyn Write + Send), err: &mut (dyn Write + Send)) -> i32 {
    match commands::dispatch(cli, out).await {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "echomesh: {e}");
            EXIT_UNREACHABLE
        }
    }
}
