//! echomesh-agent: the per-node prober.
//!
//! The layout follows the data: packets ([`icmp`]) feed the engine ([`prober`]), whose windows
//! go either to the terminal ([`probe`], one shot) or to the aggregator ([`report`], run mode).
//!
//! - [`icmp`]: raw ICMP sockets, packet build/parse, the kernel BPF filter (the only `unsafe`).
//! - [`prober`]: the probe engine: even pacing, in-flight table, timeouts, dup/reorder detection,
//!   and the per-target windows of counters and RTT histograms.
//! - [`probe`]: the one-shot `echomesh-agent probe` command (fping-like) and its target lists.
//! - [`report`]: `echomesh-agent run`: the Session stream to the aggregator (hello, assignments,
//!   reports, alerts, reconnect with a bounded replay buffer).
//! - [`metrics`]: the agent's `/metrics` (engine counters and probe totals, no per-target series).

pub mod icmp;
pub mod metrics;
pub mod probe;
pub mod prober;
pub mod report;
