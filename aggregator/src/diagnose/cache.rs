//! The verdict every reader shares: computed at most once per [`MAX_AGE`] per network.
//!
//! Why: the diagnosis walks every edge and runs the inference (hundreds of milliseconds at
//! thousands of nodes), and it has several readers — `/metrics` scrapes, the node-conditions
//! cycle, the page's banner polled by every open browser, the `Diagnose` RPC. Each used to
//! compute its own; now the first reader after the verdict expired computes it (the others wait
//! for that one computation rather than start their own) and every reader within the next second
//! gets the same verdict, stamped with when it was taken. So a verdict may be up to a second
//! older than the graph; the diagnosis describes faults that last seconds, not single reports.

use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::v1::Network;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Diagnosis, Settings, diagnose, snapshot};
use crate::graph::Graph;

/// How long a verdict is reused.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// One diagnosis and when it was taken.
#[derive(Debug)]
pub struct Verdict {
    /// The diagnosis.
    pub diagnosis: Diagnosis,
    /// Wall clock of the snapshot it was computed from (Unix milliseconds).
    pub at_unix_ms: u64,
    taken: Instant,
}

/// The shared verdicts, one per network filter (cheap to clone; clones share).
#[derive(Debug, Clone, Default)]
pub struct Verdicts {
    slots: Arc<[Mutex<Option<Arc<Verdict>>>; 3]>,
    computed: Arc<std::sync::atomic::AtomicU64>,
}

impl Verdicts {
    /// The verdict of `graph` over `network` (`Unspecified`: both), at most [`MAX_AGE`] old.
    /// Blocks while another reader computes it: call it off the async runtime.
    #[must_use]
    pub fn get(&self, graph: &Graph, network: Network) -> Arc<Verdict> {
        let slot = match network {
            Network::Unspecified => 0,
            Network::Pod => 1,
            Network::Host => 2,
        };
        let mut cached = self.slots[slot].lock();
        if let Some(v) = cached.as_ref()
            && v.taken.elapsed() < MAX_AGE
        {
            return v.clone();
        }
        let (snap, at_unix_ms) = snapshot::take(graph, network);
        let v = Arc::new(Verdict {
            diagnosis: diagnose(&snap, &Settings::default()),
            at_unix_ms,
            taken: Instant::now(),
        });
        self.computed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *cached = Some(v.clone());
        v
    }

    /// How many diagnoses were computed (the rest of the readers were served from the cache).
    #[must_use]
    pub fn computed(&self) -> u64 {
        self.computed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{EventHub, GraphConfig};

    #[tokio::test(start_paused = true)]
    async fn readers_within_a_second_share_one_verdict_per_network() {
        let graph = Graph::new(GraphConfig::default(), EventHub::new(4, 1));
        let v = Verdicts::default();
        let a = v.get(&graph, Network::Unspecified);
        let b = v.clone().get(&graph, Network::Unspecified);
        assert!(Arc::ptr_eq(&a, &b), "a clone shares the cache");
        assert_eq!(v.computed(), 1);
        let _pod = v.get(&graph, Network::Pod);
        assert_eq!(v.computed(), 2, "each network has its own verdict");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(Arc::ptr_eq(&a, &v.get(&graph, Network::Unspecified)));
        tokio::time::advance(Duration::from_millis(1)).await;
        let c = v.get(&graph, Network::Unspecified);
        assert!(!Arc::ptr_eq(&a, &c), "a second later it is taken again");
        assert_eq!(v.computed(), 3);
        assert!(c.diagnosis.healthy());
    }
}
