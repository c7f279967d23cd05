//! One shutdown signal for every binary: the first SIGINT (Ctrl-C) or SIGTERM (what the kubelet
//! sends before it kills a pod) resolves the future, and each server's `run(…, shutdown)` drains
//! from there. Taking the signal as a future keeps servers testable: tests pass any future.

/// Resolves on the first SIGINT or SIGTERM. If SIGTERM cannot be watched (no signal support),
/// only Ctrl-C stops the process, and a warning says so.
pub async fn signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the process");
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
