//! `/healthz` and `/readyz` for kubelet probes, and `/metrics` for Prometheus.
//!
//! Liveness answers while the process serves; readiness only once the gRPC listeners are bound
//! and until shutdown begins, so a rolling update drains agents to the new pod.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

/// The HTTP routes; `ready` flips readiness.
pub fn router(ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Relaxed) {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
}

/// `GET /metrics`: one scrape, rendered on the blocking pool (it walks the graph); OpenMetrics
/// when the scraper accepts it, the Prometheus text format otherwise.
pub fn metrics_router(metrics: crate::metrics::Metrics) -> Router {
    Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| {
            let metrics = metrics.clone();
            async move {
                let accept = headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                let format = crate::metrics::Format::from_accept(accept);
                match tokio::task::spawn_blocking(move || metrics.render_as(format)).await {
                    Ok(body) => (
                        StatusCode::OK,
                        [(axum::http::header::CONTENT_TYPE, format.content_type())],
                        body,
                    ),
                    Err(e) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; charset=utf-8",
                        )],
                        format!("metrics collection failed: {e}\n"),
                    ),
                }
            }
        }),
    )
}
