//! `Diagnose`: the fewest culprits explaining the failing edges, from [`crate::diagnose`].
//!
//! Why here and not in the diagnosis layer: this file only takes the snapshot, applies the
//! request's network and limit, and renders the verdict as `v1` messages; the rule itself stays
//! pure, and its verdict (at most a second old) is shared with `/metrics` and node conditions.

use echomesh_proto::v1::{self, Network};
use tonic::{Request, Response, Status};

use super::{Query, enum_arg};
use crate::diagnose::{Culprit, Diagnosis, Direction, Kind};

/// Culprits returned when the request sets no limit.
pub const DEFAULT_CULPRITS: u32 = 100;
/// The largest limit a request may set.
pub const MAX_CULPRITS: u32 = 10_000;

impl Query {
    pub(super) fn diagnose_blocking(
        &self,
        req: Request<v1::DiagnoseRequest>,
    ) -> Result<Response<v1::DiagnoseResponse>, Status> {
        let r = req.into_inner();
        let network: Network = enum_arg(r.network, "network")?;
        if r.limit > MAX_CULPRITS {
            return Err(Status::invalid_argument(format!(
                "limit must be at most {MAX_CULPRITS}, got {}",
                r.limit
            )));
        }
        let limit = if r.limit == 0 {
            DEFAULT_CULPRITS
        } else {
            r.limit
        } as usize;
        let v = self.verdicts.get(&self.graph, network);
        Ok(Response::new(response(&v.diagnosis, v.at_unix_ms, limit)))
    }
}

/// The wire form of `d`, at most `limit` culprits.
#[must_use]
pub fn response(d: &Diagnosis, now_ms: u64, limit: usize) -> v1::DiagnoseResponse {
    let shown: Vec<v1::Culprit> = d
        .culprits
        .iter()
        .take(limit)
        .map(|c| culprit(c, now_ms))
        .collect();
    let omitted = d.culprits.len().saturating_sub(limit);
    let omitted_edges: u32 = d.culprits.iter().skip(limit).map(|c| c.explained).sum();
    let explained = d.explained.saturating_sub(omitted_edges);
    v1::DiagnoseResponse {
        culprits: shown,
        healthy: d.healthy(),
        explained_edges: u64::from(explained),
        unexplained_edges: u64::from(d.failing.saturating_sub(explained)),
        generated_at_unix_ms: now_ms,
        summary: d.summary(now_ms),
        nodes: d.nodes,
        edges: u64::from(d.edges),
        edges_up: u64::from(d.edges_up),
        failing_edges: u64::from(d.failing),
        culprits_omitted: omitted as u32,
    }
}

fn culprit(c: &Culprit, now_ms: u64) -> v1::Culprit {
    let kind = match c.kind {
        Kind::Node => v1::CulpritKind::Node,
        Kind::PodNetwork => v1::CulpritKind::PodNetwork,
        Kind::HostNetwork => v1::CulpritKind::HostNetwork,
        Kind::Zone => v1::CulpritKind::Zone,
        Kind::Link => v1::CulpritKind::Link,
        Kind::AgentSilent => v1::CulpritKind::AgentSilent,
        Kind::ViewStale => v1::CulpritKind::ViewStale,
    };
    let direction = match c.direction {
        Direction::In => v1::Direction::In,
        Direction::Out => v1::Direction::Out,
        Direction::Both => v1::Direction::Both,
    };
    let (node, zone) = if c.kind == Kind::Zone {
        (String::new(), c.subject.to_string())
    } else {
        (c.subject.to_string(), String::new())
    };
    v1::Culprit {
        kind: kind as i32,
        node,
        target_node: c.target.as_deref().unwrap_or_default().to_owned(),
        zone,
        network: c.plane as i32,
        direction: direction as i32,
        failing_edges: c.failing,
        total_edges: c.total,
        explained_edges: c.explained,
        confidence: c.confidence,
        since_unix_ms: c.since_unix_ms,
        agent_silent: c.agent_silent,
        description: c.describe(now_ms),
    }
}
