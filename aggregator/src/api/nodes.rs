//! `ListNodes`: one row per agent with its edge counts.
//!
//! Why per agent and not per node: a node runs one agent per network, and a host-network agent
//! can be healthy while the pod-network one is not; each row says which.

use echomesh_proto::v1::{self, EdgeState};
use tonic::{Request, Response, Status};

use super::Query;
use crate::graph::Graph;

impl Query {
    pub(super) fn list_nodes_blocking(
        &self,
        _req: Request<v1::ListNodesRequest>,
    ) -> Result<Response<v1::ListNodesResponse>, Status> {
        let now = self.graph.now();
        let nodes = self
            .graph
            .agents()
            .iter()
            .map(|a| {
                let info = a.info.lock().clone();
                let slab = a.slab.lock();
                let count =
                    |s: EdgeState| slab.records.iter().filter(|r| r.state() == s).count() as u32;
                v1::Node {
                    name: a.key.node.to_string(),
                    network: a.key.network as i32,
                    addresses: info.addresses.iter().map(ToString::to_string).collect(),
                    connected: info.connected,
                    last_report_age_ms: Graph::age_ms(now, slab.last_report),
                    edges_out: slab.records.len() as u32,
                    edges_down: count(EdgeState::Down),
                    edges_degraded: count(EdgeState::Degraded),
                    edges_up: count(EdgeState::Up),
                    edges_unknown: slab.records.len() as u32
                        - count(EdgeState::Up)
                        - count(EdgeState::Down)
                        - count(EdgeState::Degraded),
                    version: info.version,
                    generation: slab.generation,
                    assignment_rejected: self
                        .ingest
                        .rejection(&a.key)
                        .map(|r| r.reason)
                        .unwrap_or_default(),
                }
            })
            .collect();
        Ok(Response::new(v1::ListNodesResponse { nodes }))
    }
}
