//! The small concepts every echomesh binary shares, each in one home so the agent, the
//! aggregator, the lab and the load generator behave alike at their edges.
//!
//! - [`shutdown`]: the one signal future (SIGINT or SIGTERM) that every `run(…, shutdown)` takes.
//! - [`telemetry`]: the one logging setup: `--log` / `ECHOMESH_LOG`, `--log-format` /
//!   `ECHOMESH_LOG_FORMAT`, text on a terminal, JSON lines for collectors.
//! - [`backoff`]: exponential backoff with jitter for every reconnect loop.
//! - [`procfs`]: the one `/proc` reader (CPU time, memory, threads, descriptors, liveness).
//! - [`listen`]: TCP listeners on every interface of both address families (`:PORT` is `[::]`).
//! - [`duration`]: the one parser for time flags (`100ms`, `1s`, `5m`); bare numbers are refused.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod duration;
pub mod listen;
pub mod procfs;
pub mod shutdown;
pub mod telemetry;

pub use backoff::Backoff;
pub use duration::parse_duration;
