//! How many whole-graph walks may run at once.
//!
//! Why: a Matrix, a ListEdges page, a `/metrics` scrape or a page refresh walks every agent's
//! edges on the blocking pool. Each is bounded, but nothing bounded how many run together, so a
//! loop of readers could keep every core walking and starve agent sessions. A walk now waits
//! briefly for a slot (a page's few parallel requests just queue) and is refused beyond that:
//! RESOURCE_EXHAUSTED over gRPC, 429 over HTTP, both saying so.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Whole-graph walks run at once by default (per reader: gRPC/JSON API, and `/metrics`).
pub const DEFAULT_WALKS: usize = 8;
/// How long a walk waits for a slot before it is refused.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);

/// A concurrency limit that refuses rather than queues without bound (cheap to clone).
#[derive(Debug, Clone)]
pub struct WalkLimit {
    slots: Arc<Semaphore>,
    max: usize,
    wait: Duration,
    refused: Arc<AtomicU64>,
}

/// A walk refused because every slot stayed busy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the aggregator is already running {max} whole-graph queries; none finished within {wait:?}, \
     retry later"
)]
pub struct Busy {
    /// The limit.
    pub max: usize,
    /// How long this one waited.
    pub wait: Duration,
}

impl WalkLimit {
    /// At most `max` walks at once, each waiting up to `wait` for a slot.
    #[must_use]
    pub fn new(max: usize, wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
            max: max.max(1),
            wait,
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A slot, held until the permit drops, or [`Busy`].
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, Busy> {
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(Busy {
                    max: self.max,
                    wait: self.wait,
                })
            }
        }
    }

    /// Walks refused so far.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The refusals of each reader's [`WalkLimit`] on `/metrics`:
/// `echomesh_queries_refused_total{kind="grpc|json|metrics"}`.
#[derive(Debug, Clone)]
pub struct RefusedCollector(pub Vec<(&'static str, WalkLimit)>);

impl prometheus_client::collector::Collector for RefusedCollector {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric as _;
        let mut m = enc.encode_descriptor(
            "echomesh_queries_refused",
            "Whole-graph queries refused because every slot stayed busy: kind=grpc (GraphService), json (the JSON API and the page), metrics (scrapes).",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (kind, l) in &self.0 {
            prometheus_client::metrics::counter::ConstCounter::new(l.refused())
                .encode(m.encode_family(&[("kind", *kind)])?)?;
        }
        Ok(())
    }
}

impl Default for WalkLimit {
    fn default() -> Self {
        Self::new(DEFAULT_WALKS, DEFAULT_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn beyond_the_limit_a_walk_waits_then_is_refused() {
        let l = WalkLimit::new(2, Duration::from_secs(1));
        let a = l.enter().await.expect("slot 1");
        let _b = l.enter().await.expect("slot 2");
        let e = l.enter().await.expect_err("busy");
        assert_eq!(
            e.to_string(),
            "the aggregator is already running 2 whole-graph queries; none finished within 1s, \
             retry later"
        );
        assert_eq!(l.refused(), 1);
        drop(a);
        assert!(l.enter().await.is_ok(), "a freed slot is taken at once");
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_counted_per_reader_on_metrics() {
        let grpc = WalkLimit::new(1, Duration::from_secs(1));
        let json = WalkLimit::new(1, Duration::from_secs(1));
        let _held = grpc.enter().await.expect("slot");
        grpc.enter().await.expect_err("busy");
        grpc.enter().await.expect_err("busy");
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(RefusedCollector(vec![
            ("grpc", grpc),
            ("json", json),
        ])));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("echomesh_queries_refused_total{kind=\"grpc\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("echomesh_queries_refused_total{kind=\"json\"} 0\n"),
            "{text}"
        );
    }
}
