//! Readiness is shared state, not an HTTP concern: the server flips it while starting and
//! draining, discovery names what keeps it from being ready (e.g. the API server cannot be
//! listed), and `/readyz` only reads it. Keeping it here lets every layer set it without
//! importing the HTTP layer above it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

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
