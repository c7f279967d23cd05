//! The vocabulary agents and the aggregator share.
//!
//! Everything that crosses the agent → aggregator boundary lives here so both sides agree on it by
//! construction:
//! - [`histogram`]: the mergeable log-bucket RTT histogram. Agents fill one per target per report
//!   window; the aggregator merges them into rolling windows without losing accuracy.
#![forbid(unsafe_code)]

pub mod histogram;

pub use histogram::{Histogram, HistogramError};
