//! The per-pair coverage figures as the ingest sees them: the ledger of last probes
//! ([`crate::policy::ledger`]) over the graph, judged against `--coverage-period`.
//!
//! Why here: the ledger must be fed by the assigner right before an assignment replaces a
//! prober's records, and the ingest owns both the assigner and the period.

use crate::policy::{InboundPair, PairSummary};

use super::Ingest;

impl Ingest {
    /// Cluster-wide: pairs, overdue pairs, never-probed pairs and the oldest age (at most a few
    /// seconds old; each computation is one pass over every pair).
    #[must_use]
    pub fn pair_summary(&self) -> PairSummary {
        self.inner
            .ledger
            .summary(&self.inner.graph, self.inner.cfg.coverage_period)
    }

    /// The pairs towards `node` from every connected agent of another node, oldest first
    /// (`None`: no connected agent on that node).
    #[must_use]
    pub fn inbound_pairs(&self, node: &str) -> Option<Vec<InboundPair>> {
        self.inner
            .ledger
            .inbound(&self.inner.graph, node, self.inner.cfg.coverage_period)
    }
}
