//! `Coverage`: what the pinglist policy guarantees, so an operator can prove the mesh complete —
//! the agents with the fewest fast probers first (bounded by `limit`) and the time in which every
//! directed pair is probed.

use echomesh_proto::v1;
use tonic::{Request, Response, Status};

use super::Query;

/// Agents listed when the request says 0.
pub const DEFAULT_AGENTS: u32 = 50;
/// Most agents one reply lists.
pub const MAX_AGENTS: u32 = 10_000;

impl Query {
    pub(super) fn coverage_inner(
        &self,
        req: Request<v1::CoverageRequest>,
    ) -> Result<Response<v1::CoverageResponse>, Status> {
        let r = req.into_inner();
        if r.limit > MAX_AGENTS {
            return Err(Status::invalid_argument(format!(
                "limit must be at most {MAX_AGENTS}, got {}",
                r.limit
            )));
        }
        let limit = if r.limit == 0 {
            DEFAULT_AGENTS
        } else {
            r.limit
        } as usize;
        let Some(c) = self.ingest.coverage() else {
            return Ok(Response::new(v1::CoverageResponse {
                policy: "full-mesh".into(),
                agents_total: u32::try_from(self.ingest.connected()).unwrap_or(u32::MAX),
                ..v1::CoverageResponse::default()
            }));
        };
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Ok(Response::new(v1::CoverageResponse {
            policy: "budget".into(),
            cycle_ms: ms(c.cycle),
            epoch_ms: if c.cycle.is_zero() { 0 } else { ms(c.epoch) },
            fast_probers_wanted: c.fast_probers_wanted,
            agents_total: u32::try_from(c.agents.len()).unwrap_or(u32::MAX),
            agents: c
                .agents
                .iter()
                .take(limit)
                .map(|(k, n)| v1::AgentCoverage {
                    node: k.node.to_string(),
                    network: k.network as i32,
                    fast_probers: *n,
                })
                .collect(),
        }))
    }
}
