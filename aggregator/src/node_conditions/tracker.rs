//! Which nodes need a write: blamed continuously for longer than the threshold (raise), or no
//! longer blamed after a raise (clear).
//!
//! Why a pure state machine: the threshold, the "only on change" rule and the retry after a
//! failed write are all decided here from (time, blamed nodes), so the writer only performs what
//! this returns, and a failed write is simply not confirmed and comes back in the next cycle.
//! Time is the monotonic clock of the loop (tokio's, paused in tests): a wall-clock step neither
//! raises nor clears anything.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::body::Blame;

/// A write to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Set the condition True with this blame (first raise, or the reason changed).
    Raise(String, Blame),
    /// Set the condition False.
    Clear(String),
}

impl Change {
    /// The node written.
    #[must_use]
    pub fn node(&self) -> &str {
        match self {
            Change::Raise(n, _) | Change::Clear(n) => n,
        }
    }
}

#[derive(Debug, Default)]
struct NodeState {
    /// When this run of blame began (None: not blamed now).
    blamed_since: Option<Instant>,
    /// The reason last written True (None: the condition is not True as far as we know).
    raised: Option<&'static str>,
}

/// Per-node blame history.
#[derive(Debug)]
pub struct Tracker {
    after: Duration,
    nodes: BTreeMap<String, NodeState>,
}

impl Tracker {
    /// Raises after `after` of continuous blame.
    #[must_use]
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            nodes: BTreeMap::new(),
        }
    }

    /// Records that `node`'s condition is True already (found at start-up), so it is cleared when
    /// the node is not blamed.
    pub fn assume_raised(&mut self, node: &str, reason: &'static str) {
        self.nodes.entry(node.to_string()).or_default().raised = Some(reason);
    }

    /// One cycle: `blamed` is every node blamed now. Returns the writes due, raises first.
    pub fn observe(&mut self, now: Instant, blamed: &BTreeMap<String, Blame>) -> Vec<Change> {
        let mut raises = Vec::new();
        let mut clears = Vec::new();
        for (node, blame) in blamed {
            let st = self.nodes.entry(node.clone()).or_default();
            let since = *st.blamed_since.get_or_insert(now);
            if now.duration_since(since) >= self.after && st.raised != Some(blame.reason) {
                raises.push(Change::Raise(node.clone(), blame.clone()));
            }
        }
        self.nodes.retain(|node, st| {
            if blamed.contains_key(node) {
                return true;
            }
            st.blamed_since = None;
            if st.raised.is_some() {
                clears.push(Change::Clear(node.clone()));
                true
            } else {
                false
            }
        });
        raises.extend(clears);
        raises
    }

    /// Confirms a successful write.
    pub fn written(&mut self, change: &Change) {
        match change {
            Change::Raise(n, b) => {
                if let Some(st) = self.nodes.get_mut(n) {
                    st.raised = Some(b.reason);
                }
            }
            Change::Clear(n) => {
                if self
                    .nodes
                    .get(n)
                    .is_some_and(|st| st.blamed_since.is_none())
                {
                    self.nodes.remove(n);
                } else if let Some(st) = self.nodes.get_mut(n) {
                    st.raised = None;
                }
            }
        }
    }

    /// Nodes tracked (blamed now, or raised and not yet cleared).
    #[must_use]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Nothing tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blame(reason: &'static str) -> Blame {
        Blame {
            reason,
            message: "m".into(),
        }
    }

    fn one(node: &str, reason: &'static str) -> BTreeMap<String, Blame> {
        BTreeMap::from([(node.to_string(), blame(reason))])
    }

    #[tokio::test(start_paused = true)]
    async fn raises_once_after_the_threshold_then_clears_once() {
        let mut t = Tracker::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let b = one("n1", "NodeUnreachable");
        assert!(t.observe(t0, &b).is_empty());
        assert!(t.observe(t0 + Duration::from_secs(59), &b).is_empty());
        let c = t.observe(t0 + Duration::from_secs(60), &b);
        assert_eq!(
            c,
            vec![Change::Raise("n1".into(), blame("NodeUnreachable"))]
        );
        t.written(&c[0]);
        assert!(t.observe(t0 + Duration::from_secs(70), &b).is_empty());
        // The reason changes: written again.
        let c = t.observe(t0 + Duration::from_secs(80), &one("n1", "PodNetworkBroken"));
        assert_eq!(c.len(), 1);
        t.written(&c[0]);
        let c = t.observe(t0 + Duration::from_secs(90), &BTreeMap::new());
        assert_eq!(c, vec![Change::Clear("n1".into())]);
        t.written(&c[0]);
        assert!(t.is_empty());
        assert!(
            t.observe(t0 + Duration::from_secs(100), &BTreeMap::new())
                .is_empty()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_in_blame_restarts_the_wait() {
        let mut t = Tracker::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let b = one("n1", "NodeUnreachable");
        t.observe(t0, &b);
        t.observe(t0 + Duration::from_secs(50), &BTreeMap::new());
        assert!(t.is_empty(), "never raised: forgotten");
        assert!(t.observe(t0 + Duration::from_secs(60), &b).is_empty());
        assert!(t.observe(t0 + Duration::from_secs(119), &b).is_empty());
        assert_eq!(t.observe(t0 + Duration::from_secs(120), &b).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unconfirmed_write_is_due_again() {
        let mut t = Tracker::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let b = one("n1", "NodeUnreachable");
        t.observe(t0, &b);
        assert_eq!(t.observe(t0 + Duration::from_secs(1), &b).len(), 1);
        assert_eq!(t.observe(t0 + Duration::from_secs(2), &b).len(), 1);
        t.assume_raised("n2", "NodeUnreachable");
        assert_eq!(
            t.observe(t0 + Duration::from_secs(3), &BTreeMap::new()),
            vec![Change::Clear("n2".into())]
        );
    }
}
