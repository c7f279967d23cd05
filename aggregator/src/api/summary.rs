//! `Summary`: cluster-wide counts for dashboards and `echomesh status`.
//!
//! Why counted on request rather than kept as running totals: states change inside the store on
//! every merge and sweep, and one walk per request keeps the hot path free of extra bookkeeping.

use echomesh_proto::v1::{self, EdgeState};
use tonic::{Request, Response, Status};

use super::Query;

impl Query {
    pub(super) fn summary_blocking(
        &self,
        _req: Request<v1::SummaryRequest>,
    ) -> Result<Response<v1::SummaryResponse>, Status> {
        let mut r = v1::SummaryResponse::default();
        let agents = self.graph.agents();
        r.agents_known = agents.len() as u32;
        r.agents_connected = self.ingest.connected() as u32;
        for a in &agents {
            let slab = a.slab.lock();
            for rec in &slab.records {
                r.edges += 1;
                match rec.state() {
                    EdgeState::Up => r.edges_up += 1,
                    EdgeState::Degraded => r.edges_degraded += 1,
                    EdgeState::Down => r.edges_down += 1,
                    EdgeState::Unknown | EdgeState::Unspecified => r.edges_unknown += 1,
                }
            }
        }
        let c = &self.graph.counters;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        r.reports_merged = ld(&c.reports_merged);
        r.reports_duplicate = ld(&c.reports_duplicate);
        r.unknown_targets = ld(&c.unknown_targets);
        r.uptime_ms = self.started.elapsed().as_millis() as u64;
        Ok(Response::new(r))
    }
}
