//! `Percentiles`: RTT quantiles of the cluster, a node or one edge from the merged sketches.

use echomesh_proto::v1::{self, Network, Scope};
use tonic::Status;

use super::edges::{agent_named, no_agent};
use super::names::Name;
use super::{Query, enum_arg};
use crate::graph::accumulate;
use crate::graph::sketch::{SKETCH_BUCKETS, SKETCH_RELATIVE_ERROR, quantile_ns};

/// Most quantiles per Percentiles request.
pub const MAX_QUANTILES: usize = 32;

impl Query {
    /// Quantiles over the sketches `r` selects.
    pub(super) fn percentiles_inner(
        &self,
        r: &v1::PercentilesRequest,
    ) -> Result<v1::PercentilesResponse, Status> {
        let scope: Scope = enum_arg(r.scope, "scope")?;
        let network: Network = enum_arg(r.network, "network")?;
        let quantiles = if r.quantiles.is_empty() {
            vec![0.5, 0.9, 0.99]
        } else {
            r.quantiles.clone()
        };
        if quantiles.len() > MAX_QUANTILES {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_QUANTILES} quantiles per request, got {}",
                quantiles.len()
            )));
        }
        if let Some(q) = quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(Status::invalid_argument(format!(
                "quantiles must be within 0..=1, got {q}"
            )));
        }
        let mut acc = [0u64; SKETCH_BUCKETS];
        let mut edges = 0u32;
        match scope {
            Scope::Unspecified | Scope::Cluster | Scope::Node => {
                if scope == Scope::Node && r.node.is_empty() {
                    return Err(Status::invalid_argument("scope NODE needs node"));
                }
                let name = if scope == Scope::Node {
                    Some(Name::parse(&r.node, network, "node")?)
                } else {
                    None
                };
                let network = name.as_ref().map_or(network, |n| n.network);
                let agents = self.graph.agents();
                if let Some(n) = &name
                    && !agents.iter().any(|a| agent_named(a, n))
                {
                    return Err(no_agent(n));
                }
                for a in agents {
                    if name.as_ref().is_some_and(|n| !agent_named(&a, n)) {
                        continue;
                    }
                    if network != Network::Unspecified && a.key.network != network {
                        continue;
                    }
                    let slab = a.slab.lock();
                    accumulate(&slab.records, &mut acc);
                    edges += slab.records.len() as u32;
                }
            }
            Scope::Edge => {
                let (_, rec) = self.find_edge(&v1::GetEdgeRequest {
                    source_node: r.node.clone(),
                    source_network: r.network,
                    target: r.target.clone(),
                    target_network: 0,
                })?;
                rec.sketch().add_to(&mut acc);
                edges = 1;
            }
        }
        let values_us = quantiles
            .iter()
            .map(|&q| quantile_ns(&acc, q).map_or(0.0, |v| v / 1000.0))
            .collect();
        Ok(v1::PercentilesResponse {
            quantiles,
            values_us,
            samples: acc.iter().sum(),
            relative_error: SKETCH_RELATIVE_ERROR,
            edges,
        })
    }
}
