//! Diagnosis: from a snapshot of the live graph, the smallest set of culprits that explains the
//! failing edges (a node, one node's pod or host network, a zone, a single directed link, a silent
//! agent, or the aggregator's whole view being stale), each with its evidence, a confidence and
//! since when.
//!
//! Why a layer of its own, above `graph` and `policy` and below `api`: the inference is pure (a
//! snapshot in, a verdict out, no clock, no locks), so it is tested on generated fault patterns
//! without a server, and every front end (the `Diagnose` RPC, the JSON API behind the page's
//! banner, `/metrics`) shows the same verdict because they all call [`diagnose`].
//!
//! - [`model`]: the snapshot taken from the graph and the verdict given back.
//! - [`infer`]: the rule: which groups of edges qualify as a culprit, and the greedy cover.
//! - [`snapshot`]: taking a [`Snapshot`] from the live [`crate::graph::Graph`].
//! - [`scenarios`]: generated clusters with known faults, for the tests and the accuracy example.
//! - [`cache`]: the verdict every reader shares, computed at most once a second.

pub mod cache;
pub mod infer;
pub mod model;
pub mod scenarios;
pub mod snapshot;

#[cfg(test)]
mod tests;

pub use cache::{Verdict, Verdicts};
pub use infer::{Settings, diagnose};
pub use model::{AgentObs, Culprit, Diagnosis, Direction, EdgeObs, Kind, Snapshot};
