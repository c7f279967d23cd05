//! `Matrix`: the node-by-node grid behind the heatmap.
//!
//! Why the worst value per cell: a node may have several addresses per network, and the heatmap
//! must show a broken path even when a sibling address is fine.
//!
//! Why a size limit: the grid is N² cells (two per cell on the wire), 25 million at 5,000 nodes,
//! hundreds of megabytes to build and more than any screen shows. Above [`MAX_NODES`] the request
//! must zoom into one zone; otherwise it is refused, before anything N² is allocated, with the
//! zones to choose from and a pointer to the zone summary (`ZoneMatrix`), which stays small at
//! any size.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use echomesh_proto::v1::{self, EdgeState, MatrixMetric, Network};
use tonic::{Request, Response, Status};

use super::{Query, enum_arg};
use crate::graph::IdMap;
use crate::graph::machine::severity;

/// The most nodes one matrix holds (a million cells): a screen's worth of rows, and a reply of
/// about 16 MB.
pub const MAX_NODES: usize = 1_000;

/// Zones named in the refusal of a matrix above [`MAX_NODES`].
const ZONES_NAMED: usize = 10;

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
        let zones = self.graph.node_zones();
        let zone_of = |node: &str| zones.get(node).map_or("", |z| &**z);
        let agents: Vec<_> = self
            .graph
            .agents()
            .into_iter()
            .filter(|a| network == Network::Unspecified || a.key.network == network)
            .filter(|a| r.zone.as_deref().is_none_or(|z| zone_of(&a.key.node) == z))
            .collect();
        let mut nodes: Vec<String> = agents.iter().map(|a| a.key.node.to_string()).collect();
        nodes.dedup();
        if nodes.len() > MAX_NODES {
            return Err(too_large(&nodes, r.zone.as_deref(), zone_of));
        }
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

/// The refusal of a matrix of more than [`MAX_NODES`] nodes: how many, and what to ask instead.
fn too_large<'a>(
    nodes: &'a [String],
    zone: Option<&str>,
    zone_of: impl Fn(&str) -> &'a str,
) -> Status {
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes {
        *per_zone.entry(zone_of(n)).or_default() += 1;
    }
    let mut msg = format!(
        "a matrix of {} nodes is above the limit of {MAX_NODES} nodes; ",
        nodes.len()
    );
    if let Some(z) = zone {
        let shown = if z.is_empty() { "-" } else { z };
        let _ = write!(
            msg,
            "zone {shown:?} alone has that many: read the node summary (NodeSummary, \
             `echomesh nodes --summary --zone {shown}`) or the zone summary (ZoneMatrix, \
             `echomesh zones`)"
        );
        return Status::failed_precondition(msg);
    }
    msg.push_str(
        "zoom into one zone (zone, `echomesh matrix --zone Z`) or read the zone summary \
         (ZoneMatrix, `echomesh zones`); zones: ",
    );
    let mut by_size: Vec<(&str, usize)> = per_zone.into_iter().collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = by_size
        .iter()
        .take(ZONES_NAMED)
        .map(|(z, n)| format!("{} ({n} nodes)", if z.is_empty() { "-" } else { z }))
        .collect();
    msg.push_str(&shown.join(", "));
    if by_size.len() > ZONES_NAMED {
        let _ = write!(msg, " and {} more", by_size.len() - ZONES_NAMED);
    }
    Status::failed_precondition(msg)
}
