//! `NodeSummary`: one row per node — zone, fast probers, inbound and outbound edges per state,
//! loss and p99 — sorted by a badness score, so the worst nodes of a 5,000-node cluster are the
//! first rows instead of cells lost in a 25-million-cell grid.
//!
//! Why this badness rule: an operator looks for what is broken first, then what is lossy, then
//! what is slow. `1,000,000 × DOWN edges (both directions) + 1,000 × the worse direction's
//! 1-minute loss % + the worse direction's p99 in ms (at most 999)` keeps that order: one DOWN
//! edge outranks 100 % loss elsewhere (100,000), and 1 % loss outranks any p99 (999).

use std::collections::HashMap;
use std::sync::Arc;

use echomesh_proto::v1::{self, Network, NodeSort};
use tonic::{Request, Response, Status};

use super::{Tally, Walked, walk, zone_matches};
use crate::api::pagination::{next_page_token, parse_page_token};
use crate::api::{Query, enum_arg};
use crate::graph::Graph;

/// Rows returned when the request sets no limit.
pub const DEFAULT_ROWS: u32 = 100;
/// The largest limit a request may set.
pub const MAX_ROWS: u32 = 10_000;

/// The badness of a node from its two directions (see the module docs).
#[must_use]
pub fn badness(inbound: &v1::NodeDirection, outbound: &v1::NodeDirection) -> f64 {
    let down = f64::from(inbound.down) + f64::from(outbound.down);
    let loss = inbound.loss_pct.max(outbound.loss_pct).clamp(0.0, 100.0);
    let p99_ms = (inbound.p99_us.max(outbound.p99_us) / 1000.0).clamp(0.0, 999.0);
    1_000_000.0 * down + 1_000.0 * loss + p99_ms
}

fn direction(t: &mut Tally) -> v1::NodeDirection {
    let c = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    v1::NodeDirection {
        up: c(t.up),
        degraded: c(t.degraded),
        down: c(t.down),
        unknown: c(t.unknown),
        loss_pct: t.loss_1m_pct(),
        loss_10s_pct: t.loss_10s_pct(),
        p99_us: t.median_p99_us(),
    }
}

impl Query {
    pub(crate) fn node_summary_blocking(
        &self,
        req: Request<v1::NodeSummaryRequest>,
    ) -> Result<Response<v1::NodeSummaryResponse>, Status> {
        let r = req.into_inner();
        let network: Network = enum_arg(r.network, "network")?;
        let sort: NodeSort = enum_arg(r.sort, "sort")?;
        if r.limit > MAX_ROWS {
            return Err(Status::invalid_argument(format!(
                "limit must be at most {MAX_ROWS}, got {}",
                r.limit
            )));
        }
        let limit = if r.limit == 0 { DEFAULT_ROWS } else { r.limit } as usize;
        let offset = parse_page_token(&r.page_token)?;
        let (mut inbound, mut outbound) = (Vec::<Tally>::new(), Vec::<Tally>::new());
        let walked = walk(&self.graph, network, |e| {
            let need = e.src.max(e.dst) + 1;
            if inbound.len() < need {
                inbound.resize_with(need, Tally::default);
                outbound.resize_with(need, Tally::default);
            }
            inbound[e.dst].add(e);
            outbound[e.src].add(e);
        });
        let n = walked.nodes.len();
        inbound.resize_with(n, Tally::default);
        outbound.resize_with(n, Tally::default);
        let probers = self.probers(&self.graph, network, &walked);
        let mut rows: Vec<v1::NodeSummaryRow> = (0..n)
            .filter(|&i| zone_matches(r.zone.as_deref(), &walked.zones[i]))
            .map(|i| {
                let (i_dir, o_dir) = (direction(&mut inbound[i]), direction(&mut outbound[i]));
                v1::NodeSummaryRow {
                    node: walked.nodes[i].to_string(),
                    zone: walked.zones[i].to_string(),
                    probers: probers[i],
                    badness: badness(&i_dir, &o_dir),
                    r#in: Some(i_dir),
                    out: Some(o_dir),
                }
            })
            .collect();
        if sort != NodeSort::Name {
            // Stable: equal badness keeps the name order of the walk.
            rows.sort_by(|a, b| b.badness.total_cmp(&a.badness));
        }
        let total = rows.len();
        let nodes: Vec<_> = rows.into_iter().skip(offset).take(limit).collect();
        let next = offset.saturating_add(nodes.len());
        Ok(Response::new(v1::NodeSummaryResponse {
            nodes,
            next_page_token: next_page_token(next, total),
            total: u32::try_from(total).unwrap_or(u32::MAX),
        }))
    }

    /// Per node of `walked`: the fewest fast probers any of its agents on `network` has, from
    /// the pinglist policy; under full mesh every other agent of its network probes it.
    fn probers(&self, graph: &Graph, network: Network, walked: &Walked) -> Vec<u32> {
        let on = |n: Network| network == Network::Unspecified || n == network;
        let index: HashMap<&str, usize> = walked
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (&**n, i))
            .collect();
        let mut out: Vec<Option<u32>> = vec![None; walked.nodes.len()];
        let mut fold = |node: &Arc<str>, n: u32| {
            if let Some(&i) = index.get(&**node) {
                out[i] = Some(out[i].map_or(n, |m| m.min(n)));
            }
        };
        if let Some(c) = self.ingest.coverage() {
            for (k, n) in c.agents.iter().filter(|(k, _)| on(k.network)) {
                fold(&k.node, *n);
            }
        } else {
            let agents: Vec<_> = graph
                .agents()
                .into_iter()
                .filter(|a| on(a.key.network))
                .collect();
            let mut per_net: HashMap<Network, u32> = HashMap::new();
            for a in &agents {
                *per_net.entry(a.key.network).or_default() += 1;
            }
            for a in &agents {
                fold(&a.key.node, per_net[&a.key.network].saturating_sub(1));
            }
        }
        out.into_iter().map(Option::unwrap_or_default).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(down: u32, loss: f64, p99_us: f64) -> v1::NodeDirection {
        v1::NodeDirection {
            down,
            loss_pct: loss,
            p99_us,
            ..v1::NodeDirection::default()
        }
    }

    #[test]
    fn down_edges_outrank_loss_and_loss_outranks_latency() {
        let none = dir(0, 0.0, 0.0);
        let one_down = badness(&dir(1, 0.0, 0.0), &none);
        let all_lost = badness(&none, &dir(0, 100.0, 0.0));
        let one_pct = badness(&dir(0, 1.0, 0.0), &none);
        let slow = badness(&none, &dir(0, 0.0, 5_000_000.0));
        assert!(one_down > all_lost, "{one_down} {all_lost}");
        assert!(one_pct > slow, "{one_pct} {slow}");
        assert!((slow - 999.0).abs() < 1e-9, "p99 is capped: {slow}");
        assert!(badness(&none, &none).abs() < f64::EPSILON);
    }
}
