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
                // One pass per agent: [UP, DEGRADED, DOWN, UNKNOWN].
                let mut per_state = [0u32; 4];
                for r in &slab.records {
                    per_state[match r.state() {
                        EdgeState::Up => 0,
                        EdgeState::Degraded => 1,
                        EdgeState::Down => 2,
                        EdgeState::Unknown | EdgeState::Unspecified => 3,
                    }] += 1;
                }
                v1::Node {
                    name: a.key.node.to_string(),
                    network: a.key.network as i32,
                    addresses: info.addresses.iter().map(ToString::to_string).collect(),
                    connected: info.connected,
                    last_report_age_ms: Graph::age_ms(now, slab.last_report),
                    edges_out: slab.records.len() as u32,
                    edges_up: per_state[0],
                    edges_degraded: per_state[1],
                    edges_down: per_state[2],
                    edges_unknown: per_state[3],
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
