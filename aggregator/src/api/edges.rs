//! `ListEdges` and `GetEdge`: filtered, sorted, paged edges, and one edge by its ends.
//!
//! Why filters run while walking the slabs and rendering runs last: a cluster holds millions of
//! edges, so only the page that is returned pays for names, addresses and quantiles.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use echomesh_proto::v1::{self, EdgeSort, EdgeState, Network};
use tonic::{Request, Response, Status};

use super::pagination::{DEFAULT_PAGE, MAX_PAGE, next_page_token, parse_page_token};
use super::view::{self, Detail};
use super::{Query, enum_arg};
use crate::graph::machine::severity;
use crate::graph::{AgentEntry, AgentKey, EdgeRecord, Endpoint, endpoint_id, first_per_family};

use super::names::Name;

/// Edges matching a ListEdges filter, as (agent index, slot, sort key).
struct Hit {
    agent: usize,
    slot: usize,
    key: f64,
}

impl Query {
    pub(super) fn list_edges_blocking(
        &self,
        req: Request<v1::ListEdgesRequest>,
    ) -> Result<Response<v1::ListEdgesResponse>, Status> {
        let r = req.into_inner();
        let network: Network = enum_arg(r.network, "network")?;
        let src = (!r.source_node.is_empty())
            .then(|| Name::parse(&r.source_node, network, "source_node"))
            .transpose()?;
        let dst = (!r.target_node.is_empty())
            .then(|| Name::parse(&r.target_node, Network::Unspecified, "target_node"))
            .transpose()?;
        let network = src.as_ref().map_or(network, |s| s.network);
        let sort: EdgeSort = enum_arg(r.sort, "sort")?;
        let mut states = Vec::with_capacity(r.states.len());
        for &s in &r.states {
            let st: EdgeState = enum_arg(s, "states")?;
            states.push(st);
        }
        if !(0.0..=100.0).contains(&r.min_loss_pct) {
            return Err(Status::invalid_argument(format!(
                "min_loss_pct must be within 0..=100, got {}",
                r.min_loss_pct
            )));
        }
        if !(r.min_p99_us >= 0.0 && r.min_p99_us.is_finite()) {
            return Err(Status::invalid_argument(format!(
                "min_p99_us must be a non-negative number, got {}",
                r.min_p99_us
            )));
        }
        if r.limit > MAX_PAGE {
            return Err(Status::invalid_argument(format!(
                "limit must be at most {MAX_PAGE}, got {}",
                r.limit
            )));
        }
        let offset = parse_page_token(&r.page_token)?;
        let limit = if r.limit == 0 { DEFAULT_PAGE } else { r.limit } as usize;
        let eps = self.endpoints();
        let now = self.graph.now();
        let agents = self.graph.agents();
        // A name that matches nothing is an error, not an empty page: a typo must not read as
        // "no edges".
        if let Some(s) = &src
            && !agents.iter().any(|a| agent_named(a, s))
        {
            return Err(no_agent(s));
        }
        if let Some(d) = &dst
            && !eps
                .values()
                .any(|e| d.matches(&e.node, e.network, Some(e.addr)))
        {
            return Err(no_target(d));
        }
        let mut hits = Vec::new();
        for (ai, a) in agents.iter().enumerate() {
            if src
                .as_ref()
                .is_some_and(|s| !s.matches(&a.key.node, a.key.network, None))
            {
                continue;
            }
            if network != Network::Unspecified && a.key.network != network {
                continue;
            }
            let slab = a.slab.lock();
            for (slot, rec) in slab.records.iter().enumerate() {
                if let Some(d) = &dst
                    && eps
                        .get(&rec.target_id)
                        .is_none_or(|e| !d.matches(&e.node, e.network, Some(e.addr)))
                {
                    continue;
                }
                let st = rec.state();
                if !states.is_empty() && !states.contains(&st) {
                    continue;
                }
                let loss = rec.loss_1m_pct(now).unwrap_or(0.0);
                if loss < r.min_loss_pct {
                    continue;
                }
                // A quantile costs a walk of the sketch: only when a filter or the order needs it.
                let p99 = if r.min_p99_us > 0.0 || sort == EdgeSort::P99 {
                    rec.rtt_quantile_ns(0.99).map_or(0.0, |v| v / 1000.0)
                } else {
                    0.0
                };
                if r.min_p99_us > 0.0 && p99 < r.min_p99_us {
                    continue;
                }
                let key = match sort {
                    EdgeSort::Unspecified => 0.0,
                    EdgeSort::Loss => -loss,
                    EdgeSort::P50 => -rec.rtt_quantile_ns(0.5).map_or(0.0, |v| v / 1000.0),
                    EdgeSort::P99 => -p99,
                    EdgeSort::State => -f64::from(severity(st)),
                };
                hits.push(Hit {
                    agent: ai,
                    slot,
                    key,
                });
            }
        }
        if sort != EdgeSort::Unspecified {
            // Ties in walk order, so pages follow one another; only the edges up to the end of
            // this page are put in order (`top` over millions of edges sorts ten).
            let order = |a: &Hit, b: &Hit| {
                a.key
                    .total_cmp(&b.key)
                    .then(a.agent.cmp(&b.agent))
                    .then(a.slot.cmp(&b.slot))
            };
            let end = offset.saturating_add(limit);
            if end < hits.len() {
                hits.select_nth_unstable_by(end, order);
                hits[..end].sort_unstable_by(order);
            } else {
                hits.sort_unstable_by(order);
            }
        }
        let total = hits.len();
        let page: Vec<v1::Edge> = hits
            .iter()
            .skip(offset)
            .take(limit)
            .filter_map(|h| {
                let a = &agents[h.agent];
                let rec: EdgeRecord = *a.slab.lock().records.get(h.slot)?;
                Some(view::edge(&self.graph, &a.key, &rec, now, Detail::Summary))
            })
            .collect();
        let next = offset.saturating_add(limit);
        Ok(Response::new(v1::ListEdgesResponse {
            edges: page,
            next_page_token: next_page_token(next, total),
            total_matched: total as u64,
        }))
    }

    /// The agent and a copy of the record of the edge `r` names.
    pub(super) fn find_edge(
        &self,
        r: &v1::GetEdgeRequest,
    ) -> Result<(Arc<AgentEntry>, EdgeRecord), Status> {
        if r.source_node.is_empty() || r.target.is_empty() {
            return Err(Status::invalid_argument(
                "source_node and target are required",
            ));
        }
        let src_net: Network = enum_arg(r.source_network, "source_network")?;
        let dst_net: Network = enum_arg(r.target_network, "target_network")?;
        let src = Name::parse(&r.source_node, src_net, "source_node")?;
        // Pod network first when the name leaves it open; an address picks the agent that has it.
        let agent = src
            .networks()
            .iter()
            .filter_map(|&n| self.find_agent(&src.node, n))
            .find(|a| agent_named(a, &src))
            .ok_or_else(|| no_agent(&src))?;
        let ids = self.target_ids(&r.target, dst_net)?;
        let found = {
            let slab = agent.slab.lock();
            ids.iter().find_map(|(id, _)| {
                slab.records
                    .iter()
                    .find(|rec| rec.target_id == *id)
                    .copied()
            })
        };
        let rec = found.ok_or_else(|| {
            Status::not_found(format!("no edge from {} to {:?}", agent.key, r.target))
        })?;
        Ok((agent, rec))
    }

    /// The edge from `source_node` to `target` (a name as [`Name`] parses it, or an address),
    /// with its detail.
    pub(super) fn get_edge_inner(&self, r: &v1::GetEdgeRequest) -> Result<v1::Edge, Status> {
        let (agent, rec) = self.find_edge(r)?;
        let now = self.graph.now();
        Ok(view::edge(&self.graph, &agent.key, &rec, now, Detail::Full))
    }

    fn endpoints(&self) -> HashMap<u64, Endpoint> {
        self.graph.endpoints().into_iter().collect()
    }

    /// The agent on `node`: by key, pod network first when `network` is unspecified.
    pub(super) fn find_agent(&self, node: &str, network: Network) -> Option<Arc<AgentEntry>> {
        let nets: &[Network] = match network {
            Network::Unspecified => &[Network::Pod, Network::Host],
            Network::Pod => &[Network::Pod],
            Network::Host => &[Network::Host],
        };
        nets.iter().find_map(|&n| {
            self.graph.agent(&AgentKey {
                node: node.into(),
                network: n,
            })
        })
    }

    /// Ids of the endpoints `target` names (an address, or `node[/network[/address]]`), pod
    /// network first.
    fn target_ids(&self, target: &str, network: Network) -> Result<Vec<(u64, Network)>, Status> {
        let net_ok = |n: Network| network == Network::Unspecified || n == network;
        let name = match target.parse::<IpAddr>() {
            Ok(ip) => Name {
                node: String::new(),
                network,
                addr: Some(ip),
            },
            Err(_) => Name::parse(target, network, "target")?,
        };
        let mut ids: Vec<(u64, Network)> = match name.addr {
            Some(ip) => self
                .graph
                .endpoints_with_addr(ip)
                .into_iter()
                .filter(|(_, n)| net_ok(*n) && name.networks().contains(n))
                .filter(|(id, _)| {
                    name.node.is_empty()
                        || self
                            .graph
                            .endpoint(*id)
                            .is_some_and(|e| *e.node == *name.node)
                })
                .collect(),
            None => name
                .networks()
                .iter()
                .copied()
                .filter(|&n| net_ok(n))
                .filter_map(|n| {
                    self.graph.agent(&AgentKey {
                        node: name.node.as_str().into(),
                        network: n,
                    })
                })
                .flat_map(|a| {
                    let net = a.key.network;
                    let node = a.key.node.clone();
                    let addrs = first_per_family(&a.info.lock().addresses);
                    addrs
                        .into_iter()
                        .map(move |ip| (endpoint_id(&node, net, ip), net))
                })
                .collect(),
        };
        ids.sort_by_key(|&(_, n)| n != Network::Pod);
        Ok(ids)
    }
}

/// Whether agent `a` is the one `name` names (node, network, and one of its addresses).
pub(super) fn agent_named(a: &AgentEntry, name: &Name) -> bool {
    name.matches(&a.key.node, a.key.network, None)
        && name
            .addr
            .is_none_or(|ip| a.info.lock().addresses.contains(&ip))
}

/// `NotFound` for a source name that matches no agent.
pub(super) fn no_agent(name: &Name) -> Status {
    Status::not_found(match (name.network, name.addr) {
        (Network::Unspecified, None) => format!("no agent on node {:?}", name.node),
        (_, None) => format!(
            "no agent on node {:?} in the {} network",
            name.node, name.network
        ),
        (_, Some(_)) => format!("no agent {:?}", name.to_string()),
    })
}

/// `NotFound` for a target name that matches no endpoint.
fn no_target(name: &Name) -> Status {
    Status::not_found(format!("no target {:?}", name.to_string()))
}
