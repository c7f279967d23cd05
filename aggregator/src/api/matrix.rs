//! `Matrix`: the node-by-node grid behind the heatmap.
//!
//! Why the worst value per cell: a node may have several addresses per network, and the heatmap
//! must show a broken path even when a sibling address is fine.

use std::collections::HashMap;

use echomesh_proto::v1::{self, EdgeState, MatrixMetric, Network};
use tonic::{Request, Response, Status};

use super::{Query, enum_arg};
use crate::graph::IdMap;
use crate::graph::machine::severity;

impl Query {
    pub(super) fn matrix_blocking(
        &self,
        req: Request<v1::MatrixRequest>,
    ) -> Result<Response<v1::MatrixResponse>, Status> {
        let r = req.into_inner();
        let metric: MatrixMetric = enum_arg(r.metric, "metric")?;
        let network: Network = enum_arg(r.network, "network")?;
        let metric = if metric == MatrixMetric::Unspecified {
            MatrixMetric::Loss
        } else {
            metric
        };
        let agents: Vec<_> = self
            .graph
            .agents()
            .into_iter()
            .filter(|a| network == Network::Unspecified || a.key.network == network)
            .collect();
        let mut nodes: Vec<String> = agents.iter().map(|a| a.key.node.to_string()).collect();
        nodes.dedup();
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let target_index: IdMap<usize> = self
            .graph
            .endpoints()
            .into_iter()
            .filter(|(_, e)| network == Network::Unspecified || e.network == network)
            .filter_map(|(id, e)| Some((id, *index.get(&*e.node)?)))
            .collect();
        let n = nodes.len();
        let mut values = vec![f64::NAN; n * n];
        let mut states = vec![EdgeState::Unspecified as i32; n * n];
        let now = self.graph.now();
        for a in &agents {
            let Some(&i) = index.get(&*a.key.node) else {
                continue;
            };
            let slab = a.slab.lock();
            for rec in &slab.records {
                let Some(&j) = target_index.get(&rec.target_id) else {
                    continue;
                };
                let v = match metric {
                    MatrixMetric::Loss | MatrixMetric::Unspecified => rec.loss_1m_pct(now),
                    MatrixMetric::P50 => rec.rtt_quantile_ns(0.5).map(|v| v / 1000.0),
                    MatrixMetric::P99 => rec.rtt_quantile_ns(0.99).map(|v| v / 1000.0),
                };
                let cell = i * n + j;
                if let Some(v) = v
                    && (values[cell].is_nan() || v > values[cell])
                {
                    values[cell] = v;
                }
                let st = rec.state();
                let cur = EdgeState::try_from(states[cell]).unwrap_or(EdgeState::Unspecified);
                if cur == EdgeState::Unspecified || severity(st) > severity(cur) {
                    states[cell] = st as i32;
                }
            }
        }
        Ok(Response::new(v1::MatrixResponse {
            nodes,
            values,
            states,
            metric: metric as i32,
        }))
    }
}
