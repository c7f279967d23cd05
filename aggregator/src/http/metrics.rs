//! `/metrics`: the graph as Prometheus series (OpenMetrics or classic text), with bounded
//! cardinality.
//!
//! Why computed at scrape time: the graph already holds every figure (states, loss rings, RTT
//! sketches), so an [`AggregatorCollector`] walks the slabs once per scrape — one slab lock at a time, like the
//! query API — and nothing is added to the ingest hot path.
//!
//! Why the cardinality is bounded: an n-node cluster has n² edges, so per-edge series are off by
//! default. What is exported is linear in nodes: per node and direction (`out`: probes the node's
//! agent sent, `in`: probes towards the node) a loss ratio and an RTT histogram, plus the top-K worst
//! edges (K fixed, and only edges that are not healthy, so a quiet cluster exports none and the
//! set does not churn) and, when explicitly enabled, per-edge series capped at a fixed count.
//!
//! Why the RTT histograms are cumulative although the sketches decay: Prometheus computes
//! quantiles from `rate()` over `_bucket` counters, so the counts must only grow. Each scrape adds
//! the replies received since the previous scrape (the growth of the edges' `received_total`),
//! spread over the buckets in the shape of the edges' current sketches (the last minute or two).
//! `_count` therefore counts real replies exactly; the bucket shape carries the sketch's 2 %
//! error and lags by a minute or two, which is fine for alerts that wait 10 minutes.
//!
//! Why per-node series can be capped (`--metrics-max-nodes`): at 5,000 nodes with both networks
//! they are ~320,000 series and ~29 MB a scrape. A cap keeps the worst nodes (highest loss, then
//! by name, so a healthy cluster exports a stable set) and counts the rest; the cluster-wide
//! figures and the alerts on the worst nodes are unchanged.
//!
//! - [`snapshot`]: the one pass over the graph ([`gather`]).
//! - [`top_k`]: keeping the worst edges without sorting them all.
//! - [`cumulative`]: growing Prometheus histograms from decaying sketches.
//! - [`collector`]: encoding the snapshot, ingest counters and process figures.
//! - [`diagnosis`]: the diagnosis's culprits per kind and the nodes it blames.
//! - [`pinglist`]: what the pinglist policy guarantees (fast probers, coverage cycle).
//! - [`process`]: `process_*` series from `/proc`.
//! - [`mod@format`]: OpenMetrics or classic text, and the `/metrics` route.

pub mod collector;
pub mod cumulative;
pub mod diagnosis;
pub mod format;
pub mod pinglist;
pub mod process;
pub mod rare;
pub mod snapshot;
pub mod top_k;

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::registry::Registry;

pub use collector::AggregatorCollector;
pub use cumulative::RTT_BUCKETS_S;
pub use format::{Format, router};
pub use snapshot::{Direction, EdgeFigure, Snapshot, gather};

use crate::graph::Graph;
#[cfg(test)]
use crate::graph::sketch::SKETCH_BUCKETS;
use crate::ingest::Ingest;
#[cfg(test)]
use cumulative::Cumulative;

/// What `/metrics` exports beyond the always-on, per-node series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// How many of the worst edges get their own series.
    pub top_k: usize,
    /// Export one loss and one p99 series per edge (n² series: for small clusters only).
    pub edge_series: bool,
    /// Most edges exported when `edge_series` is on; the worst come first.
    pub max_edge_series: usize,
    /// Most nodes with per-node series (loss ratio and RTT histogram); 0: every node. Beyond it
    /// the nodes with the highest loss are kept, then by name.
    pub max_nodes: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            top_k: 20,
            edge_series: false,
            max_edge_series: 10_000,
            max_nodes: 0,
        }
    }
}

/// The `/metrics` registry of the aggregator (cheap to clone).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// How many scrapes may walk the graph at once (see `crate::limit`).
    scrapes: crate::limit::WalkLimit,
}

impl Metrics {
    /// Metrics over `graph` and `ingest`.
    #[must_use]
    pub fn new(graph: Arc<Graph>, ingest: Ingest, cfg: MetricsConfig) -> Self {
        Self::sharing(graph, ingest, cfg, crate::diagnose::Verdicts::default())
    }

    /// Metrics over `graph` and `ingest` whose diagnosis series read `verdicts` (shared with the
    /// other readers of the diagnosis).
    #[must_use]
    pub fn sharing(
        graph: Arc<Graph>,
        ingest: Ingest,
        cfg: MetricsConfig,
        verdicts: crate::diagnose::Verdicts,
    ) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(
            AggregatorCollector::new(graph, ingest, cfg).with_verdicts(verdicts),
        ));
        Self {
            registry: Arc::new(registry),
            // Scrapes beyond these wait briefly, then get 429.
            scrapes: crate::limit::WalkLimit::new(2, crate::limit::DEFAULT_WAIT),
        }
    }

    /// The limit on concurrent scrapes (its refusals are `kind="metrics"` of
    /// `echomesh_queries_refused_total`).
    #[must_use]
    pub fn scrape_limit(&self) -> &crate::limit::WalkLimit {
        &self.scrapes
    }

    /// Adds `collector`'s series to every scrape (call before the first clone).
    #[must_use]
    pub fn with_collector(
        mut self,
        collector: Box<dyn prometheus_client::collector::Collector>,
    ) -> Self {
        match Arc::get_mut(&mut self.registry) {
            Some(r) => r.register_collector(collector),
            None => tracing::error!(
                "metrics: a collector was added after the registry was shared; its series are missing"
            ),
        }
        self
    }

    /// One scrape in OpenMetrics text (walks the whole graph: call it off the async runtime).
    #[must_use]
    pub fn render(&self) -> String {
        self.render_as(Format::OpenMetrics)
    }

    /// One scrape in `format`.
    #[must_use]
    pub fn render_as(&self, format: Format) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let r = match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        };
        if let Err(e) = r {
            // Only a formatting bug can get here; say so in the scrape rather than panic.
            out.clear();
            let _ = writeln!(out, "# encoding failed: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests;
