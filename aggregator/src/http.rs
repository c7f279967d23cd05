//! Everything the aggregator serves over plain HTTP: the top layer, for kubelets, Prometheus,
//! browsers and `curl`.
//!
//! Why a layer of its own: HTTP only presents what the layers below hold (the graph, ingest
//! counters, the query API); nothing below imports it, so the HTTP surface can change without
//! touching the hot path.
//! - [`health`]: `/healthz`, `/readyz`.
//! - [`metrics`]: `/metrics` (OpenMetrics text, bounded cardinality).
//! - [`page`]: the heatmap page (`/`, static files in `ui/`).
//! - [`json_api`]: the JSON API (`/api/v1/*`) over the `GraphService` implementation.

pub mod health;
pub mod json_api;
pub mod metrics;
pub mod page;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;

use crate::readiness::Readiness;

pub use json_api::{ApiError, JsonApi};
pub use metrics::Metrics;

/// Every HTTP route: health, metrics, the page and the JSON API; unknown `/api/` paths get a JSON
/// error, anything else a plain 404.
pub fn router(ready: Arc<Readiness>, metrics: Metrics, api: JsonApi) -> Router {
    health::router(ready)
        .merge(metrics::router(metrics))
        .merge(page::router())
        .merge(api.router())
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/api/") {
                ApiError::NotFound(format!("no API endpoint {}", uri.path())).into_response()
            } else {
                (StatusCode::NOT_FOUND, "not found\n").into_response()
            }
        })
}
