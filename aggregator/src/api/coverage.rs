//! `Coverage`: what the pinglist policy guarantees and what was actually done, so an operator can
//! prove the mesh complete — the agents with the fewest fast probers first (bounded by `limit`),
//! the time in which every directed pair should be probed, and from the per-pair ledger
//! ([`crate::policy::ledger`]) the pairs not probed within the coverage period, the oldest pair,
//! and with `node` every pair towards that node with the age of its last probe.

use std::time::Duration;

use echomesh_proto::v1;
use tonic::{Request, Response, Status};

use super::Query;

/// Agents listed when the request says 0.
pub const DEFAULT_AGENTS: u32 = 50;
/// Most agents one reply lists.
pub const MAX_AGENTS: u32 = 10_000;
/// Longest node name (a DNS subdomain).
pub const MAX_NODE_NAME: usize = 253;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

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
        if r.node.len() > MAX_NODE_NAME {
            return Err(Status::invalid_argument(format!(
                "node must be a node name of at most {MAX_NODE_NAME} bytes, got {}",
                r.node.len()
            )));
        }
        let limit = if r.limit == 0 {
            DEFAULT_AGENTS
        } else {
            r.limit
        } as usize;
        let mut resp = match self.ingest.coverage() {
            None => v1::CoverageResponse {
                policy: "full-mesh".into(),
                agents_total: u32::try_from(self.ingest.connected()).unwrap_or(u32::MAX),
                ..v1::CoverageResponse::default()
            },
            Some(c) => v1::CoverageResponse {
                policy: "budget".into(),
                cycle_ms: ms(c.cycle),
                epoch_ms: if c.cycle.is_zero() { 0 } else { ms(c.epoch) },
                fast_probers_wanted: c.fast_probers_wanted,
                agents_total: u32::try_from(c.agents.len()).unwrap_or(u32::MAX),
                agents: if r.node.is_empty() {
                    c.agents
                        .iter()
                        .take(limit)
                        .map(|(k, n)| v1::AgentCoverage {
                            node: k.node.to_string(),
                            network: k.network as i32,
                            fast_probers: *n,
                        })
                        .collect()
                } else {
                    c.agents
                        .iter()
                        .filter(|(k, _)| *k.node == *r.node)
                        .map(|(k, n)| v1::AgentCoverage {
                            node: k.node.to_string(),
                            network: k.network as i32,
                            fast_probers: *n,
                        })
                        .collect()
                },
                ..v1::CoverageResponse::default()
            },
        };
        let s = self.ingest.pair_summary();
        resp.period_ms = ms(s.period);
        resp.pairs = s.pairs;
        resp.pairs_overdue = s.overdue;
        resp.pairs_never_probed = s.never;
        resp.oldest_pair_age_ms = ms(s.oldest_age);
        if !r.node.is_empty() {
            let Some(inbound) = self.ingest.inbound_pairs(&r.node) else {
                return Err(Status::not_found(format!(
                    "no connected agent on node {:?}",
                    r.node
                )));
            };
            resp.inbound_total = u32::try_from(inbound.len()).unwrap_or(u32::MAX);
            resp.inbound = inbound
                .into_iter()
                .take(limit)
                .map(|p| v1::PairProbe {
                    prober_node: p.prober.node.to_string(),
                    prober_network: p.prober.network as i32,
                    target_network: p.target_network as i32,
                    target_address: p.target_addr.to_string(),
                    probed: p.age.is_some(),
                    last_probed_age_ms: p.age.map_or(0, ms),
                    in_pinglist: p.in_pinglist,
                })
                .collect();
        }
        Ok(Response::new(resp))
    }
}
