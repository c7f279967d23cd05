//! The heatmap page and the JSON HTTP API behind it.
//!
//! Why a JSON API beside gRPC: browsers (and `curl | jq`) cannot speak gRPC without a proxy. Every
//! endpoint calls the same [`GraphService`] implementation as the gRPC server, so filters, limits,
//! validation and error messages are the query module's, not a second copy; this module only maps
//! query strings to requests, replies to JSON, and gRPC status codes to HTTP ones
//! (`INVALID_ARGUMENT` → 400, `NOT_FOUND` → 404, `RESOURCE_EXHAUSTED` → 429).
//!
//! The page is three static files compiled into the binary (`include_str!`): no npm, no build
//! step, nothing to mount. It polls `/api/v1/matrix` and draws on a canvas, so 500 nodes (250 000
//! cells) stay smooth where 250 000 DOM cells would not.
//!
//! | path | mirrors |
//! |---|---|
//! | `GET /api/v1/summary` | `Summary` |
//! | `GET /api/v1/nodes` | `ListNodes` |
//! | `GET /api/v1/edges?source=&target=&network=&state=&min_loss_pct=&min_p99_us=&sort=&limit=&page_token=` | `ListEdges` |
//! | `GET /api/v1/edge?source=&target=&source_network=&target_network=` | `GetEdge`, plus p99.9 and the per-minute history |
//! | `GET /api/v1/matrix?metric=loss\|p50\|p99&network=pod\|host\|any` | `Matrix` |
//! | `GET /api/v1/percentiles?scope=cluster\|node\|edge&node=&target=&network=&q=0.5,0.99` | `Percentiles` |

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::RawQuery;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use echomesh_proto::v1::{
    self, EdgeSort, EdgeState, MatrixMetric, Network, Scope, graph_service_server::GraphService,
};
use serde_json::{Value, json};
use tonic::{Code, Request, Status};

use crate::graph::{AgentKey, Graph, network_name};
use crate::query::Query;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const STYLE_CSS: &str = include_str!("../ui/style.css");

/// Why an API request failed, as the HTTP reply says it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    /// The query string was wrong (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing matched (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// A limit was hit (HTTP 429).
    #[error("{0}")]
    Exhausted(String),
    /// Anything else (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        let m = s.message().to_string();
        match s.code() {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                Self::BadRequest(m)
            }
            Code::NotFound => Self::NotFound(m),
            Code::ResourceExhausted => Self::Exhausted(m),
            _ => Self::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Exhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (code, json_reply(&json!({ "error": self.to_string() }))).into_response()
    }
}

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

/// Decodes `%XX` and `+` in a query-string component.
#[must_use]
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed query string that refuses parameters the endpoint does not know.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `raw`, allowing only `known` keys (a typo is a 400, not a silently ignored filter).
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, ApiError> {
        let mut m = HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k);
            if !known.contains(&k.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {:?}: expected one of {}",
                    k.chars().take(40).collect::<String>(),
                    known.join(", ")
                )));
            }
            m.insert(k, percent_decode(v));
        }
        Ok(Self(m))
    }

    /// The value of `k`, empty when absent.
    #[must_use]
    pub fn str(&self, k: &str) -> &str {
        self.0.get(k).map_or("", String::as_str)
    }

    fn num<T: std::str::FromStr + Default>(&self, k: &str, what: &str) -> Result<T, ApiError> {
        match self.0.get(k).map(String::as_str) {
            None | Some("") => Ok(T::default()),
            Some(v) => v.parse().map_err(|_| {
                ApiError::BadRequest(format!(
                    "{k} must be {what}, got {:?}",
                    v.chars().take(40).collect::<String>()
                ))
            }),
        }
    }
}

fn choice<T: Copy>(k: &str, v: &str, options: &[(&str, T)], default: T) -> Result<T, ApiError> {
    if v.is_empty() {
        return Ok(default);
    }
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            ApiError::BadRequest(format!(
                "unknown {k} {:?}: expected one of {}",
                v.chars().take(40).collect::<String>(),
                names.join(", ")
            ))
        })
}

const NETWORKS: [(&str, Network); 3] = [
    ("pod", Network::Pod),
    ("host", Network::Host),
    ("any", Network::Unspecified),
];
const METRICS: [(&str, MatrixMetric); 3] = [
    ("loss", MatrixMetric::Loss),
    ("p50", MatrixMetric::P50),
    ("p99", MatrixMetric::P99),
];
const STATES: [(&str, EdgeState); 4] = [
    ("up", EdgeState::Up),
    ("degraded", EdgeState::Degraded),
    ("down", EdgeState::Down),
    ("unknown", EdgeState::Unknown),
];
const SORTS: [(&str, EdgeSort); 4] = [
    ("none", EdgeSort::Unspecified),
    ("loss", EdgeSort::Loss),
    ("p99", EdgeSort::P99),
    ("state", EdgeSort::State),
];
const SCOPES: [(&str, Scope); 3] = [
    ("cluster", Scope::Cluster),
    ("node", Scope::Node),
    ("edge", Scope::Edge),
];

fn network(p: &Params, k: &str) -> Result<Network, ApiError> {
    choice(k, p.str(k), &NETWORKS, Network::Unspecified)
}

/// Lower-case name of an edge state.
#[must_use]
pub fn state_name(s: i32) -> &'static str {
    match EdgeState::try_from(s) {
        Ok(EdgeState::Up) => "up",
        Ok(EdgeState::Degraded) => "degraded",
        Ok(EdgeState::Down) => "down",
        Ok(EdgeState::Unknown) => "unknown",
        _ => "none",
    }
}

fn net_name(n: i32) -> &'static str {
    network_name(Network::try_from(n).unwrap_or(Network::Unspecified))
}

/// Rounds to 4 significant digits (keeps matrix replies small; the sketch is within 18% anyway).
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

/// An edge as JSON.
#[must_use]
pub fn edge_json(e: &v1::Edge) -> Value {
    json!({
        "source_node": e.source_node,
        "source_network": net_name(e.source_network),
        "target_node": e.target_node,
        "target_network": net_name(e.target_network),
        "target_address": e.target_address,
        "target_id": e.target_id.to_string(),
        "state": state_name(e.state),
        "state_age_ms": e.state_age_ms,
        "last_seen_age_ms": e.last_seen_age_ms,
        "loss_1m_pct": e.loss_1m_pct,
        "loss_10m_pct": e.loss_10m_pct,
        "p50_us": e.p50_us,
        "p90_us": e.p90_us,
        "p99_us": e.p99_us,
        "p99_10m_us": e.p99_10m_us,
        "sent_total": e.sent_total,
        "received_total": e.received_total,
        "duplicates_total": e.duplicates_total,
        "reordered_total": e.reordered_total,
        "late_total": e.late_total,
        "icmp_errors_total": e.icmp_errors_total,
    })
}

/// The API and the page (cheap to clone).
#[derive(Debug, Clone)]
pub struct Web {
    query: Query,
    graph: Arc<Graph>,
}

impl Web {
    /// Serves `query` (the same service the gRPC server runs) over `graph`.
    #[must_use]
    pub fn new(query: Query, graph: Arc<Graph>) -> Self {
        Self { query, graph }
    }

    async fn summary(&self, raw: Option<String>) -> ApiResult {
        Params::parse(raw.as_deref(), &[])?;
        let s = self
            .query
            .summary(Request::new(v1::SummaryRequest::default()))
            .await?
            .into_inner();
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
        let r = self
            .query
            .list_nodes(Request::new(v1::ListNodesRequest::default()))
            .await?
            .into_inner();
        let nodes: Vec<Value> = r
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "name": n.name,
                    "network": net_name(n.network),
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
        Ok(json_reply(&json!({ "nodes": nodes })))
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
            states.push(choice("state", s, &STATES, EdgeState::Unspecified)? as i32);
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
        let r = self.query.list_edges(Request::new(req)).await?.into_inner();
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
        let e = self.query.get_edge(Request::new(req)).await?.into_inner();
        let mut v = edge_json(&e);
        // What GetEdge does not carry: the p99.9 and the per-minute ring, from the same record.
        let key = AgentKey {
            node: e.source_node.as_str().into(),
            network: Network::try_from(e.source_network).unwrap_or(Network::Unspecified),
        };
        let now = self.graph.now();
        let rec = self.graph.agent(&key).and_then(|a| {
            a.slab
                .lock()
                .records
                .iter()
                .find(|r| r.target_id == e.target_id)
                .copied()
        });
        if let (Some(rec), Some(obj)) = (rec, v.as_object_mut()) {
            obj.insert(
                "p999_us".into(),
                json!(rec.rtt_quantile_ns(0.999).map_or(0.0, |ns| ns / 1000.0)),
            );
            let history: Vec<Value> = rec
                .history(now)
                .into_iter()
                .map(|(ago, sent, lost, p99)| {
                    json!({
                        "minutes_ago": ago,
                        "sent": sent,
                        "lost": lost,
                        "loss_pct": 100.0 * lost as f64 / sent.max(1) as f64,
                        "p99_us": p99.map(|ns| ns / 1000.0),
                    })
                })
                .collect();
            obj.insert("history".into(), Value::Array(history));
        }
        Ok(json_reply(&v))
    }

    async fn matrix(&self, raw: Option<String>) -> ApiResult {
        let p = Params::parse(raw.as_deref(), &["metric", "network"])?;
        let metric = choice("metric", p.str("metric"), &METRICS, MatrixMetric::Loss)?;
        let net = network(&p, "network")?;
        let r = self
            .query
            .matrix(Request::new(v1::MatrixRequest {
                metric: metric as i32,
                network: net as i32,
            }))
            .await?
            .into_inner();
        let metric_name = METRICS
            .iter()
            .find(|(_, m)| *m as i32 == r.metric)
            .map_or("loss", |(n, _)| *n);
        Ok(json_reply(&json!({
            "metric": metric_name,
            "unit": if metric_name == "loss" { "pct" } else { "us" },
            "network": network_name(net),
            "nodes": r.nodes,
            "values": r.values.iter().map(|&v| round4(v)).collect::<Vec<_>>(),
            "states": r.states.iter().map(|&s| state_name(s)).collect::<Vec<_>>(),
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
        let r = self
            .query
            .percentiles(Request::new(req))
            .await?
            .into_inner();
        Ok(json_reply(&json!({
            "quantiles": r.quantiles,
            "values_us": r.values_us,
            "samples": r.samples,
            "relative_error": r.relative_error,
            "edges": r.edges,
        })))
    }

    /// The routes: `/`, `/ui/*`, `/api/v1/*`.
    pub fn router(self) -> Router {
        let page = |body: &'static str, ctype: &'static str| {
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, ctype),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    body,
                )
            })
        };
        macro_rules! api {
            ($method:ident) => {{
                let web = self.clone();
                get(move |RawQuery(q): RawQuery| {
                    let web = web.clone();
                    async move { web.$method(q).await }
                })
            }};
        }
        Router::new()
            .route("/", page(INDEX_HTML, "text/html; charset=utf-8"))
            .route("/ui/app.js", page(APP_JS, "text/javascript; charset=utf-8"))
            .route("/ui/style.css", page(STYLE_CSS, "text/css; charset=utf-8"))
            .route("/api/v1/summary", api!(summary))
            .route("/api/v1/nodes", api!(nodes))
            .route("/api/v1/edges", api!(edges))
            .route("/api/v1/edge", api!(edge))
            .route("/api/v1/matrix", api!(matrix))
            .route("/api/v1/percentiles", api!(percentiles))
            .fallback(|uri: axum::http::Uri| async move {
                if uri.path().starts_with("/api/") {
                    ApiError::NotFound(format!("no API endpoint {}", uri.path())).into_response()
                } else {
                    (StatusCode::NOT_FOUND, "not found\n").into_response()
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_refuse_unknown_keys() {
        assert_eq!(percent_decode("a%20b+c%2Fd%"), "a b c/d%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        let p = Params::parse(Some("metric=p99&network=pod"), &["metric", "network"]).expect("ok");
        assert_eq!(p.str("metric"), "p99");
        assert_eq!(p.str("missing"), "");
        let e = Params::parse(Some("metrc=p99"), &["metric", "network"]).expect_err("typo");
        assert_eq!(
            e.to_string(),
            "unknown parameter \"metrc\": expected one of metric, network"
        );
    }

    #[test]
    fn choices_name_the_options() {
        let e = choice("metric", "p95", &METRICS, MatrixMetric::Loss).expect_err("bad");
        assert_eq!(
            e,
            ApiError::BadRequest("unknown metric \"p95\": expected one of loss, p50, p99".into())
        );
        assert_eq!(
            choice("network", "HOST", &NETWORKS, Network::Unspecified),
            Ok(Network::Host)
        );
        assert_eq!(
            choice("network", "", &NETWORKS, Network::Unspecified),
            Ok(Network::Unspecified)
        );
    }

    #[test]
    fn rounding_keeps_four_digits_and_nulls_nan() {
        assert_eq!(round4(f64::NAN), Value::Null);
        assert_eq!(round4(123.456_78), json!(123.5));
        assert_eq!(round4(0.012_345_6), json!(0.012_35));
        assert_eq!(round4(0.0), json!(0.0));
    }
}
