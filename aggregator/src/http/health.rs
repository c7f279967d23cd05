//! `/healthz` and `/readyz` for kubelet probes and people.
//!
//! Liveness answers while the process serves. Readiness is false until the gRPC listeners are
//! bound, after shutdown begins (so a rolling update drains agents to the new pod), and while a
//! component reports a reason (e.g. Kubernetes discovery cannot list nodes): the body names every
//! reason, so `curl /readyz` says *why* without reading logs.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use crate::readiness::Readiness;

/// `/healthz` and `/readyz`; `ready` decides `/readyz`.
pub fn router(ready: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready.check() {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                        Err(why) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready\n{}\n", why.join("\n")),
                        ),
                    }
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_named_and_cleared() {
        let r = Readiness::default();
        assert_eq!(r.check(), Ok(()));
        r.set_reason("kubernetes", "cannot list nodes");
        assert_eq!(r.check(), Err(vec!["kubernetes: cannot list nodes".into()]));
        r.set_serving(false);
        assert_eq!(r.check().map_err(|w| w.len()), Err(2));
        r.clear_reason("kubernetes");
        r.set_serving(true);
        assert_eq!(r.check(), Ok(()));
    }
}
