//! The aggregator's memory comes in ordinary 4 KiB pages, never transparent huge pages.
//!
//! Why: the allocator (mimalloc) asks the kernel for huge pages on its arenas and returns freed
//! memory to the kernel ~10 ms after it is freed. Ingest frees and allocates report-sized buffers
//! (tens of KiB) a thousand times a second, so the same memory keeps coming back, and with huge
//! pages every first touch makes the kernel zero a whole 2 MiB page on the thread that touched it:
//! a runtime worker, which then stalls every session and query it polls. Profiled under 1 M
//! edge-updates/s, a quarter of the server's CPU went to zeroing huge pages in such faults, and
//! `GetEdge` calls waited behind them. With 4 KiB pages a fault zeroes only what is touched. The
//! whole-graph walks lose a little to TLB misses; the record store is read sequentially, slab by
//! slab, so the loss is small (see docs/aggregator.md, "Where ingest time goes").

/// Turns transparent huge pages off for this process (and its children), whatever the host's
/// `/sys/kernel/mm/transparent_hugepage/enabled` says. Call it first thing in `main`: it covers
/// memory mapped before the call too, from the next page fault on. A kernel that refuses (built
/// without THP, or a seccomp profile) changes nothing, which is logged at debug level.
pub fn small_pages_only() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages stay as the host has them");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_flag_is_set() {
        // The flag belongs to the whole process (its memory map), so setting it in a test
        // binary is harmless: tests allocate the same either way.
        super::small_pages_only();
        assert_eq!(
            rustix::thread::transparent_huge_pages_are_disabled().ok(),
            Some(true)
        );
    }
}
