//! `/healthz` and `/readyz` for kubelet probes and people.
//!
//! Liveness answers while the process serves. Readiness is false until the gRPC listeners are
//! bound, after shutdown begins (so a rolling update drains agents to the new pod), and while a
//! component reports a reason (e.g. Kubernetes discovery cannot list nodes): the body names every
//! reason, so `curl /readyz` says *why* without reading logs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use parking_lot::Mutex;

/// Readiness: a serving flag plus named reasons for not being ready.
#[derive(Debug)]
pub struct Readiness {
    serving: AtomicBool,
    reasons: Mutex<BTreeMap<&'static str, String>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            serving: AtomicBool::new(true),
            reasons: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Readiness {
    /// Sets whether the servers accept work (false during shutdown).
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Relaxed);
    }

    /// Marks `component` not ready, with a reason a person can act on.
    pub fn set_reason(&self, component: &'static str, reason: impl Into<String>) {
        self.reasons.lock().insert(component, reason.into());
    }

    /// Clears `component`'s reason.
    pub fn clear_reason(&self, component: &'static str) {
        self.reasons.lock().remove(component);
    }

    /// `Ok` when ready, else every reason as `component: reason`.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut why: Vec<String> = self
            .reasons
            .lock()
            .iter()
            .map(|(c, r)| format!("{c}: {r}"))
            .collect();
        if !self.serving.load(Ordering::Relaxed) {
            why.insert(0, "shutting down".into());
        }
        if why.is_empty() { Ok(()) } else { Err(why) }
    }
}

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
