//! `/healthz` and `/readyz` for kubelet probes (metrics and the web page come with their own issue).
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
