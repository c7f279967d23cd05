//! `echomesh`: the command line over `GraphService`.
//!
//! Modules:
//! - [`connect`]: aggregator URLs (`http://HOST:PORT`, `unix:///path`) to a gRPC channel, and
//!   failures in words (refused, timed out, the HTTP port instead of the gRPC one).
//! - [`render`]: tables, wide tables and JSON; colours only on a terminal.
//! - [`commands`]: one function per subcommand, writing to any `io::Write` so tests read the output.
//! - [`diagnose`]: `diagnose`, the aggregator's culprits as a table or JSON.
//!
//! Exit codes are part of the interface (made for cron and CI):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | fine (also when stdout is closed early, as by `echomesh edges \| head`) |
//! | 1 | `diagnose` found culprits; `check` found edges outside the limits, or fewer agents or nodes than `--min-agents` / `--expect-nodes` |
//! | 2 | the aggregator could not be reached, refused the request or did not answer within `--timeout`; a bad flag; `check` with no agent connected |
//! | 3 | the named node, agent or edge does not exist (the message lists the known agents) |
//!
//! Names: wherever a node is named (`edge SRC DST`, `edges --from/--to`) the CLI takes `node`,
//! `node/network` or `node/network/address` (`node1/host`, `node2/pod/10.244.2.2`), as the tables
//! print them; the aggregator parses them (`GraphService`), so grpcurl and the JSON API accept the
//! same names.
#![forbid(unsafe_code)]

pub mod commands;
pub mod connect;
pub mod coverage;
pub mod diagnose;
pub mod render;
pub mod summary;

use std::io::Write;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use echomesh_proto::v1::Network;

/// Exit code: everything within limits.
pub const EXIT_OK: i32 = 0;
/// Exit code: `check` found edges outside the limits.
pub const EXIT_VIOLATIONS: i32 = 1;
/// Exit code: the aggregator could not be reached, refused the request or did not answer in time;
/// a bad flag; `check` with no agent connected.
pub const EXIT_UNREACHABLE: i32 = 2;
/// Exit code: the named node, agent or edge does not exist.
pub const EXIT_NOT_FOUND: i32 = 3;

const AFTER_HELP: &str = "\
Names: node, node/network or node/network/address, as the tables print them
(echomesh edge node1/host node2/host; echomesh edges --to node2/pod/10.244.2.2).

Exit codes:
  0  fine (also when stdout is closed early, as by `echomesh edges | head`)
  1  check: edges outside the limits, or fewer agents/nodes than --min-agents/--expect-nodes
     diagnose: culprits found
  2  the aggregator is unreachable, refused the request or timed out; a bad flag;
     check with no agent connected
  3  the named node, agent or edge does not exist";

/// `echomesh` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "echomesh",
    version,
    about = "Query the echomesh aggregator: the cluster's live connectivity graph",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Aggregator URL: http://HOST:PORT, https://HOST:PORT or unix:///path/to/socket.
    #[arg(
        long,
        global = true,
        env = "ECHOMESH_AGGREGATOR",
        default_value = "http://127.0.0.1:7070"
    )]
    pub aggregator: String,
    /// Check an `https://` aggregator's certificate against this CA (PEM); without it,
    /// `https://` uses the system's root certificates.
    #[arg(long, global = true, env = "ECHOMESH_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, global = true, env = "ECHOMESH_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// How long a command may take in all, connecting included (`5s`, `500ms`); for `watch`, how
    /// long each connection attempt may take.
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

/// `nodes --summary` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeOrder {
    /// Worst first: DOWN edges, then loss, then p99.
    Badness,
    /// By node name.
    Name,
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
    /// Agents (node and network): whether each is connected, and how its edges are. With
    /// `--summary`, one row per node instead, worst first: its zone, fast probers, inbound and
    /// outbound edges DOWN, loss and p99, and the badness they rank by.
    Nodes {
        /// One row per node, worst first (the view for large clusters).
        #[arg(long)]
        summary: bool,
        /// With --summary: only the nodes of this zone (`-`: the nodes whose zone is unknown).
        #[arg(long, requires = "summary")]
        zone: Option<String>,
        /// With --summary: only this network's edges: pod, host or any.
        #[arg(long, value_name = "pod|host|any", requires = "summary")]
        network: Option<Network>,
        /// With --summary: worst first (badness) or by name.
        #[arg(long, value_enum, default_value_t = NodeOrder::Badness, requires = "summary")]
        sort: NodeOrder,
        /// With --summary: most nodes to show, 1..=10000.
        #[arg(long, default_value_t = 50, requires = "summary",
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// The zone-by-zone grid: per source and target zone, the edges DOWN or the loss; `-o wide`
    /// adds every cell's counts and p99. Nodes whose zone is unknown form the zone `-`.
    Zones {
        /// Only this network: pod, host or any.
        #[arg(long, value_name = "pod|host|any")]
        network: Option<Network>,
    },
    /// Edges, filtered and sorted.
    Edges {
        /// Source: node, node/network or node/network/address.
        #[arg(long, value_name = "NODE[/NETWORK[/ADDRESS]]")]
        from: Option<String>,
        /// Target: node, node/network or node/network/address.
        #[arg(long, value_name = "NODE[/NETWORK[/ADDRESS]]")]
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
        /// Source: node or node/network (`node1/host`).
        #[arg(value_name = "SRC")]
        src: String,
        /// Target: node, node/network, node/network/address or an address.
        #[arg(value_name = "DST")]
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
        /// Only the nodes of this zone as rows and columns (`-`: the nodes whose zone is
        /// unknown); needed above 1,000 nodes.
        #[arg(long)]
        zone: Option<String>,
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
    /// Stream state changes as they happen; reconnects when the aggregator goes away.
    Watch {
        /// Start with the current state of every edge.
        #[arg(long)]
        snapshot: bool,
        /// One line per edge change even in a storm (by default more than 100 changes a second,
        /// and edges coming UP from UNKNOWN, arrive counted per zone pair).
        #[arg(long)]
        every_change: bool,
    },
    /// Exit 0 when every known edge is within the limits, 1 otherwise (listing them), 2 when the
    /// aggregator cannot be reached or no agent is connected.
    Check {
        /// Also fail edges whose loss over the last minute is above this, percent. Without it,
        /// `check` judges the current state only: an edge fails while the aggregator holds it
        /// DOWN or DEGRADED, so a healed link passes at once instead of a minute later.
        #[arg(long)]
        max_loss: Option<f64>,
        /// Also fail edges whose p99 RTT over the last minute is above this, milliseconds.
        #[arg(long)]
        max_p99: Option<f64>,
        /// Fail (exit 1) when fewer agents than this are connected, naming those that are gone.
        #[arg(long, value_name = "N")]
        min_agents: Option<u32>,
        /// Fail (exit 1) when fewer nodes than this have a connected agent, naming the others.
        #[arg(long, value_name = "N")]
        expect_nodes: Option<u32>,
    },
    /// What is broken and since when: the fewest culprits (a node, one node's pod or host
    /// network, a zone, a link, a silent agent) explaining the failing edges. Exit 0 when healthy,
    /// 1 when culprits were found.
    Diagnose {
        /// Only this network: pod, host or any.
        #[arg(long, value_name = "pod|host|any")]
        network: Option<Network>,
        /// Most culprits to show (the rest are counted).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// What the pinglist policy guarantees: the time in which every directed pair is probed, and
    /// the agents with the fewest full-rate probers first; the pairs not probed within the
    /// coverage period; with --node, when each of the node's probers last probed it.
    Coverage {
        /// Most agents to list (fewest fast probers first), 1..=10000; with --node, most probers.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// List the probers of this node with the age of each one's last probe, oldest first.
        #[arg(long)]
        node: Option<String>,
    },
}

/// Why a command failed. Every text that came from the aggregator is escaped when shown.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The URL is not usable.
    #[error("{0}")]
    Url(String),
    /// Could not connect: `why` says what happened in words (refused, timed out, no socket).
    #[error("cannot reach the aggregator at {url}: {why}")]
    Connect {
        /// The URL.
        url: String,
        /// What happened.
        why: String,
    },
    /// No complete answer within `--timeout`.
    #[error("the aggregator at {url} did not answer: timed out after {after:?} (--timeout)")]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        after: std::time::Duration,
    },
    /// Something that is not gRPC answered: most likely the aggregator's HTTP port.
    #[error(
        "{url} does not speak gRPC ({detail}): this looks like the aggregator's HTTP port; the gRPC port is the one of --grpc-listen (7070 by default)"
    )]
    NotGrpc {
        /// The URL.
        url: String,
        /// What the gRPC client saw (escaped).
        detail: String,
    },
    /// The named node, agent or edge does not exist; the message names the known ones.
    #[error("{0}")]
    NotFound(String),
    /// `check` cannot check anything.
    #[error("{0}")]
    Check(String),
    /// The aggregator answered with an error.
    #[error("aggregator: {}: {}", .0.code(), render::printable(.0.message()))]
    Rpc(tonic::Status),
    /// Writing output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// The exit code of this failure.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::NotFound(_) => EXIT_NOT_FOUND,
            Self::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
            _ => EXIT_UNREACHABLE,
        }
    }
}

/// Runs `cli`, writing results to `out` and messages to `err`; returns the exit code. A closed
/// `out` (a reader such as `head` that has seen enough) ends the command quietly with 0.
pub async fn run(cli: &Cli, out: &mut (dyn Write + Send), err: &mut (dyn Write + Send)) -> i32 {
    match commands::dispatch(cli, out, err).await {
        Ok(code) => code,
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            let _ = writeln!(err, "echomesh: {e}");
            e.exit_code()
        }
    }
}
