//! `GraphService`: the read side of the graph for the CLI, grpcurl and the web page.
//!
//! Queries walk the per-agent slabs, locking one slab at a time and copying out only what they
//! need, so readers never stall ingest for longer than one agent's worth of records. Results are
//! bounded: pages of at most [`MAX_PAGE`] edges with an offset page token, a capped number of
//! quantiles, a capped number of watch subscribers. Every reader (gRPC, the JSON API, the watch
//! snapshot) renders edges through [`view`], so an edge looks the same wherever it is read.
//!
//! - [`service`]: the thin tonic trait implementation.
//! - [`pagination`]: page tokens and limits.
//! - [`names`]: the `node[/network[/address]]` names every request accepts, parsed once.
//! - [`summary`], [`nodes`], [`edges`], [`matrix`], [`percentiles`], [`watch`]: one per request.
//! - [`diagnose`]: `Diagnose`, the verdict of [`crate::diagnose`] as `v1` messages.
//! - [`coverage`]: `Coverage`, what the pinglist policy guarantees.
//! - [`rollup`]: `NodeSummary` and `ZoneMatrix`, the graph summed per node and per zone.
//! - [`view`]: the one place an edge record becomes a `v1::Edge`.

pub mod coverage;
pub mod diagnose;
pub mod edges;
pub mod matrix;
pub mod names;
pub mod nodes;
pub mod pagination;
pub mod percentiles;
pub mod rollup;
pub mod service;
pub mod summary;
pub mod view;
pub mod watch;

use std::sync::Arc;

use tonic::Status;

pub use pagination::{DEFAULT_PAGE, MAX_PAGE, parse_page_token};
pub use percentiles::MAX_QUANTILES;

use crate::graph::Graph;
use crate::ingest::Ingest;

/// The query service (cheap to clone).
#[derive(Debug, Clone)]
pub struct Query {
    graph: Arc<Graph>,
    ingest: Ingest,
    started: tokio::time::Instant,
    walks: crate::limit::WalkLimit,
    verdicts: crate::diagnose::Verdicts,
}

impl Query {
    /// Serves `graph`; `ingest` tells how many agents are connected.
    #[must_use]
    pub fn new(graph: Arc<Graph>, ingest: Ingest) -> Self {
        Self {
            graph,
            ingest,
            started: tokio::time::Instant::now(),
            walks: crate::limit::WalkLimit::default(),
            verdicts: crate::diagnose::Verdicts::default(),
        }
    }
}

impl Query {
    /// Shares `walks` as this service's limit on concurrent whole-graph walks (so its refusals
    /// can be counted on `/metrics`).
    #[must_use]
    pub fn with_walk_limit(mut self, walks: crate::limit::WalkLimit) -> Self {
        self.walks = walks;
        self
    }

    /// Shares `verdicts` as this service's diagnosis (one verdict a second for every reader).
    #[must_use]
    pub fn with_verdicts(mut self, verdicts: crate::diagnose::Verdicts) -> Self {
        self.verdicts = verdicts;
        self
    }

    /// Runs a whole-graph walk on the blocking pool at background priority ([`crate::background`]),
    /// so a 1M-edge Matrix never stalls the runtime threads that serve agent sessions.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Query) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let slot = self
            .walks
            .enter()
            .await
            .map_err(|busy| Status::resource_exhausted(busy.to_string()))?;
        let q = self.clone();
        crate::background::run(move || {
            let _slot = slot;
            f(&q)
        })
        .await
        .map_err(|e| Status::internal(format!("query task failed: {e}")))?
    }
}

fn enum_arg<T: TryFrom<i32>>(v: i32, what: &str) -> Result<T, Status> {
    T::try_from(v).map_err(|_| Status::invalid_argument(format!("{what}: unknown value {v}")))
}
