//! The JSON HTTP API behind the heatmap page.
//!
//! Why a JSON API beside gRPC: browsers (and `curl | jq`) cannot speak gRPC without a proxy. Every
//! endpoint calls the same [`GraphService`] implementation as the gRPC server, so filters, limits,
//! validation and error messages are the query API's, not a second copy, and it never reads the
//! graph itself; this module only maps query strings to requests, replies to JSON (edges through
//! [`echomesh_proto::view`], like the CLI), and gRPC status codes to HTTP ones
//! (`INVALID_ARGUMENT` → 400, `NOT_FOUND` → 404, `RESOURCE_EXHAUSTED` → 429).
//!
//! | path | mirrors |
//! |---|---|
//! | `GET /api/v1/summary` | `Summary` |
//! | `GET /api/v1/nodes` | `ListNodes` (with `agents_by_network`) |
//! | `GET /api/v1/edges?source=&target=&network=&state=&min_loss_pct=&min_p99_us=&sort=&limit=&page_token=` | `ListEdges` |
//! | `GET /api/v1/edge?source=&target=&source_network=&target_network=` | `GetEdge` (with its p99.9 and per-minute history) |
//! | `GET /api/v1/matrix?metric=loss\|p50\|p99&network=pod\|host\|any&zone=` | `Matrix` (one zone's nodes; required above 1,000 nodes) |
//! | `GET /api/v1/node-summary?network=&zone=&sort=badness\|name&limit=&page_token=` | `NodeSummary` |
//! | `GET /api/v1/zones?network=` | `ZoneMatrix` |
//! | `GET /api/v1/percentiles?scope=cluster\|node\|edge&node=&target=&network=&q=0.5,0.99` | `Percentiles` |
//! | `GET /api/v1/diagnose?network=pod\|host\|any&limit=` | `Diagnose` (the page's banner) |

mod error;
mod params;

use axum::Router;
use axum::extract::RawQuery;
use axum::http::header;
use axum::routing::get;
use echomesh_proto::v1::{
    self, EdgeSort, EdgeState, MatrixMetric, NodeSort, Scope, graph_service_server::GraphService,
};
use echomesh_proto::view::{diagnosis_json, edge_detail_json, edge_json, network_name, state_name};
use serde_json::{Value, json};
use tonic::Request;

pub use error::ApiError;
pub use params::{Params, percent_decode};

use crate::api::Query;
use params::{METRICS, NODE_SORTS, SCOPES, SORTS, choice, network};

fn json_reply(v: &Value) -> ([(header::HeaderName, &'static str); 2], String) {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        v.to_string(),
    )
}

type ApiResult = Result<([(header::HeaderName, &'static str); 2], String), ApiError>;

/// Rounds to 4 significant digits (keeps matrix replies small; the sketch is within 2 % anyway).
fn round4(v: f64) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    if v == 0.0 {
        return json!(0.0);
    }
    let mag = 10f64.powi(3 - v.abs().log10().floor() as i32);
    json!((v * mag).round() / mag)
}

/// The `zone` parameter: absent or empty means every zone, `-` the nodes whose zone is unknown
/// (the zone the replies name "").
fn zone_param(p: &Params) -> Option<String> {
    match p.str("zone") {
        "" => None,
        "-" => Some(String::new()),
        z => Some(z.to_string()),
    }
}

/// One direction of a node summary row.
fn direction_json(d: Option<&v1::NodeDirection>) -> Value {
    let d = d.cloned().unwrap_or_default();
    json!({
        "up": d.up,
        "degraded": d.degraded,
        "down": d.down,
        "unknown": d.unknown,
        "loss_pct": round4(d.loss_pct),
        "loss_10s_pct": round4(d.loss_10s_pct),
        "p99_us": round4(d.p99_us),
    })
}

/// What a query call answered, or its status as the API's error.
async fn answer<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ApiError> {
    Ok(call.await?.into_inner())
}

/// The JSON API (cheap to clone).
#[derive(Debug, Clone)]
pub struct JsonApi {
    query: Query,
}

impl JsonApi {
    /// Serves `query` (the same service the gRPC server runs).
    #[must_use]
    pub fn new(query: Query) -> Self {
        Self { query }
    }

    async fn summary(&self, raw: Option<String>) -> ApiResult {
        Params::parse(raw.as_deref(), &[])?;
        let req = v1::SummaryRequest::default();
        let s = answer(self.query.summary(Request::new(req))).await?;
        Ok(json_reply(&json!({
            "agents_connected": s.agents_connected,
            "agents_known": s.agents_known,
            "edges": s.edges,
            "edges_up": s.edges_up,
            "edges_degraded": s.edges_degraded,
            "edges_down": s.edges_down,
            "edges_unknown": s.edges_unknown,
            "reports_merged": s.reports_merged,
            "reports_duplicate": s.reports_duplicate,
            "unknown_targets": s.unknown_targets,
            "uptime_ms": s.uptime_ms,
        })))
    }

    async fn nodes(&self, raw: Option<String>) -> ApiResult {
        Params::parse(raw.as_deref(), &[])?;
        let req = v1::ListNodesRequest::default();
        let r = answer(self.query.list_nodes(Request::new(req))).await?;
        let nodes: Vec<Value> = r
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "name": n.name,
                    "network": network_name(n.network),
                    "addresses": n.addresses,
                    "connected": n.connected,
                    "last_report_age_ms": n.last_report_age_ms,
                    "edges_out": n.edges_out,
                    "edges_down": n.edges_down,
                    "edges_degraded": n.edges_degraded,
                    "version": n.version,
                    "generation": n.generation,
                })
            })
            .collect();
        // Agents per network, both networks always present: the page opens on one with agents.
        let count = |net: v1::Network| r.nodes.iter().filter(|n| n.network == net as i32).count();
        Ok(json_reply(&json!({
            "nodes": nodes,
            "agents_by_network": {
                "pod": count(v1::Network::Pod),
                "host": count(v1::Network::Host),
            },
        })))
    }

    async fn edges(&self, raw: Option<String>) -> ApiResult {
        let p = Params::parse(
            raw.as_deref(),
            &[
                "source",
                "target",
                "network",
                "state",
                "min_loss_pct",
                "min_p99_us",
                "sort",
                "limit",
                "page_token",
            ],
        )?;
        let mut states = Vec::new();
        for s in p.str("state").split(',').filter(|s| !s.is_empty()) {
            states.push(choice("state", s, &params::states(), EdgeState::Unspecified)? as i32);
        }
        let req = v1::ListEdgesRequest {
            source_node: p.str("source").to_string(),
            target_node: p.str("target").to_string(),
            network: network(&p, "network")? as i32,
            states,
            min_loss_pct: p.num("min_loss_pct", "a number")?,
            min_p99_us: p.num("min_p99_us", "a number")?,
            sort: choice("sort", p.str("sort"), &SORTS, EdgeSort::Unspecified)? as i32,
            limit: p.num("limit", "a whole number")?,
            page_token: p.str("page_token").to_string(),
        };
        let r = answer(self.query.list_edges(Request::new(req))).await?;
        Ok(json_reply(&json!({
            "edges": r.edges.iter().map(edge_json).collect::<Vec<_>>(),
            "next_page_token": r.next_page_token,
            "total_matched": r.total_matched,
        })))
    }

    async fn edge(&self, raw: Option<String>) -> ApiResult {
        let p = Params::parse(
            raw.as_deref(),
            &["source", "target", "source_network", "target_network"],
        )?;
        let req = v1::GetEdgeRequest {
            source_node: p.str("source").to_string(),
            source_network: network(&p, "source_network")? as i32,
            target: p.str("target").to_string(),
            target_network: network(&p, "target_network")? as i32,
        };
        let e = answer(self.query.get_edge(Request::new(req))).await?;
        Ok(json_reply(&edge_detail_json(&e)))
    }

    async fn matrix(&self, raw: Option<String>) -> ApiResult {
        let p = Params::parse(raw.as_deref(), &["metric", "network", "zone"])?;
        let metric = choice("metric", p.str("metric"), &METRICS, MatrixMetric::Loss)?;
        let net = network(&p, "network")?;
        let r = answer(self.query.matrix(Request::new(v1::MatrixRequest {
            metric: metric as i32,
            network: net as i32,
            zone: zone_param(&p),
        })))
        .await?;
        let metric_name = METRICS
            .iter()
            .find(|(_, m)| *m as i32 == r.metric)
            .map_or("loss", |(n, _)| *n);
        Ok(json_reply(&json!({
            "metric": metric_name,
            "unit": if metric_name == "loss" { "pct" } else { "us" },
            "network": net.name(),
            "nodes": r.nodes,
            "values": r.values.iter().map(|&v| round4(v)).collect::<Vec<_>>(),
            "states": r.states.iter().map(|&s| state_name(s)).collect::<Vec<_>>(),
        })))
    }

    async fn node_summary(&self, raw: Option<String>) -> ApiResult {
        let p = Params::parse(
            raw.as_deref(),
            &["network", "zone", "sort", "limit", "page_token"],
        )?;
        let net = network(&p, "network")?;
        let req = v1::NodeSummaryRequest {
            network: net as i32,
            zone: zone_param(&p),
            limit: p.num("limit", "a whole number")?,
            page_token: p.str("page_token").to_string(),
            sort: choice("sort", p.str("sort"), &NODE_SORTS, NodeSort::Badness)? as i32,
        };
        let r = answer(self.query.node_summary(Request::new(req))).await?;
        let nodes: Vec<Value> = r
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "node": n.node,
                    "zone": n.zone,
                    "probers": n.probers,
                    "in": direction_json(n.r#in.as_ref()),
                    "out": direction_json(n.out.as_ref()),
                    "badness": round4(n.badness),
                })
            })
            .collect();
        Ok(json_reply(&json!({
            "network": net.name(),
            "nodes": nodes,
            "total": r.total,
            "next_page_token": r.next_page_token,
        })))
    }

    async fn zones(&self, raw: Option<String>) -> ApiResult {
        let p = Params::parse(raw.as_deref(), &["network"])?;
        let net = network(&p, "network")?;
        let r = answer(self.query.zone_matrix(Request::new(v1::ZoneMatrixRequest {
            network: net as i32,
        })))
        .await?;
        let cells: Vec<Value> = r
            .cells
            .iter()
            .map(|c| {
                json!({
                    "from_zone": c.from_zone,
                    "to_zone": c.to_zone,
                    "edges": c.edges,
                    "up": c.up,
                    "degraded": c.degraded,
                    "down": c.down,
                    "unknown": c.unknown,
                    "loss_pct": round4(c.loss_pct),
                    "p99_us": round4(c.p99_us),
                })
            })
            .collect();
        Ok(json_reply(&json!({
            "network": net.name(),
            "zones": r.zones,
            "cells": cells,
        })))
    }

    async fn percentiles(&self, raw: Option<String>) -> ApiResult {
        let p = Params::parse(raw.as_deref(), &["scope", "node", "target", "network", "q"])?;
        let mut quantiles = Vec::new();
        for q in p.str("q").split(',').filter(|s| !s.is_empty()) {
            quantiles.push(q.trim().parse::<f64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "q must be numbers within 0..=1 separated by commas, got {:?}",
                    q.chars().take(40).collect::<String>()
                ))
            })?);
        }
        let req = v1::PercentilesRequest {
            scope: choice("scope", p.str("scope"), &SCOPES, Scope::Cluster)? as i32,
            node: p.str("node").to_string(),
            target: p.str("target").to_string(),
            network: network(&p, "network")? as i32,
            quantiles,
        };
        let r = answer(self.query.percentiles(Request::new(req))).await?;
        Ok(json_reply(&json!({
            "quantiles": r.quantiles,
            "values_us": r.values_us,
            "samples": r.samples,
            "relative_error": r.relative_error,
            "edges": r.edges,
        })))
    }

    async fn diagnose(&self, raw: Option<String>) -> ApiResult {
        let p = Params::parse(raw.as_deref(), &["network", "limit"])?;
        let req = v1::DiagnoseRequest {
            network: network(&p, "network")? as i32,
            limit: p.num("limit", "a whole number")?,
        };
        let r = answer(self.query.diagnose(Request::new(req))).await?;
        Ok(json_reply(&diagnosis_json(&r)))
    }

    /// The routes under `/api/v1/`.
    pub fn router(self) -> Router {
        macro_rules! api {
            ($method:ident) => {{
                let api = self.clone();
                get(move |RawQuery(q): RawQuery| {
                    let api = api.clone();
                    async move { api.$method(q).await }
                })
            }};
        }
        Router::new()
            .route("/api/v1/summary", api!(summary))
            .route("/api/v1/nodes", api!(nodes))
            .route("/api/v1/edges", api!(edges))
            .route("/api/v1/edge", api!(edge))
            .route("/api/v1/matrix", api!(matrix))
            .route("/api/v1/percentiles", api!(percentiles))
            .route("/api/v1/diagnose", api!(diagnose))
            .route("/api/v1/node-summary", api!(node_summary))
            .route("/api/v1/zones", api!(zones))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_four_digits_and_nulls_nan() {
        assert_eq!(round4(f64::NAN), Value::Null);
        assert_eq!(round4(123.456_78), json!(123.5));
        assert_eq!(round4(0.012_345_6), json!(0.012_35));
        assert_eq!(round4(0.0), json!(0.0));
    }
}
