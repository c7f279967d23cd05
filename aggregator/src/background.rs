//! Whole-graph work runs on the blocking pool at a lower CPU priority than the runtime workers.
//!
//! Why: a walk over every edge holds a core for tens to hundreds of milliseconds (a 1000 × 1000
//! Matrix ~170 ms, a diagnosis of 2 M edges ~300 ms, an assignment round of 10,000 lists
//! ~0.35 s). Off the runtime workers it no longer stalls the sessions they poll, but at the same
//! priority the kernel still shares the cores evenly between the walk and the workers, so on a
//! small machine the acks and point reads (`GetEdge`) wait for their turn behind it. A thread
//! that runs such work lowers its own priority to nice [`NICE`] (once: raising it again would
//! need `CAP_SYS_NICE`): a runtime worker that wakes then gets a core at once, and the walk
//! still gets every cycle the workers leave idle, so it is slowed only when the cores are busy
//! with sessions.
//!
//! The blocking pool's threads are shared: one that ran background work stays at the lower
//! priority for whatever runs on it later. Everything else the aggregator sends there (file
//! reads, DNS lookups for the Kubernetes client) is background work too.

use std::cell::Cell;

/// The nice value of threads that ran background work (0 is the default, 19 the lowest).
pub const NICE: i32 = 10;

/// Runs `f` on the blocking pool at [`NICE`].
///
/// # Errors
///
/// When `f` panicked (or the runtime shut down first).
pub async fn run<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        lower_priority();
        f()
    })
    .await
}

thread_local! {
    static LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// Lowers this thread's priority to [`NICE`], once per thread. A refusal (a seccomp profile
/// that denies `setpriority`) is logged once per thread and the work runs at the usual priority.
fn lower_priority() {
    if LOWERED.with(|l| l.replace(true)) {
        return;
    }
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), NICE) {
        tracing::debug!(error = %e, "could not lower a background thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_runs_at_the_lower_priority_and_workers_keep_theirs() {
        let own = || rustix::process::getpriority_process(Some(rustix::thread::gettid()));
        let worker = own().expect("getpriority");
        let inside = run(move || own().expect("getpriority")).await.expect("ran");
        // A thread already at NICE or lower keeps its value (nice only goes down here).
        assert_eq!(inside, NICE.max(worker), "background thread");
        assert_eq!(own().expect("getpriority"), worker, "the runtime worker");
    }
}
