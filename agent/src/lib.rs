//! echomesh-agent: the per-node prober.
//!
//! - [`icmp`]: raw ICMP sockets, packet build/parse, the kernel BPF filter (the only `unsafe`).
//! - [`stats`]: per-target counters and RTT histograms, windowed for reports.
//! - [`metrics`]: the agent's `/metrics` (engine counters and probe totals, no per-target series).
//! - [`prober`]: the probe engine: even pacing, in-flight table, timeouts, dup/reorder detection.
//! - [`targets`]: parsing target lists (addresses, CIDRs, files) for the CLI.
//! - [`probe`]: the one-shot `echomesh-agent probe` command (fping-like).
//! - [`reporter`]: `echomesh-agent run`: the Session stream to the aggregator (hello, assignments,
//!   reports, alerts, reconnect with a bounded replay buffer).
//! - [`telemetry`]: logging setup shared by every subcommand.

pub mod icmp;
pub mod metrics;
pub mod probe;
pub mod prober;
pub mod reporter;
pub mod stats;
pub mod targets;
pub mod telemetry;
