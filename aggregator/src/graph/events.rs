//! State-change events fanned out to `WatchEvents` subscribers.
//!
//! A `tokio::sync::broadcast` ring: ingest never waits for a reader (a slow subscriber misses
//! events and is told how many), and the number of subscribers is capped so memory stays bounded.
//! Events are compact on the ingest side ([`GraphEvent`]: an `Arc` clone and a target id); each
//! subscriber's own task turns them into wire events with names and addresses, so a burst of a
//! million transitions costs ingest a million cheap sends, not a million string builds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use echomesh_proto::v1::{EdgeState, event::Kind};
use tokio::sync::broadcast;

use super::identity::AgentKey;

/// An event as ingest emits it.
#[derive(Debug, Clone)]
pub enum GraphEvent {
    /// An edge changed state.
    Edge {
        /// Source agent.
        src: AgentKey,
        /// Target endpoint id.
        target: u64,
        /// Previous state.
        from: EdgeState,
        /// New state.
        to: EdgeState,
        /// Wall-clock time.
        at_ms: u64,
    },
    /// An agent connected, disconnected or was replaced.
    Agent {
        /// What happened.
        kind: Kind,
        /// The agent.
        src: AgentKey,
        /// Detail.
        message: String,
        /// Wall-clock time.
        at_ms: u64,
    },
}

/// Milliseconds since the Unix epoch (wall clock, for event timestamps only).
#[must_use]
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The event fan-out.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<GraphEvent>,
    subscribers: Arc<AtomicUsize>,
    max_subscribers: usize,
}

/// A live subscription; dropping it frees the slot.
#[derive(Debug)]
pub struct Subscription {
    /// The events.
    pub rx: broadcast::Receiver<GraphEvent>,
    count: Arc<AtomicUsize>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EventHub {
    /// A hub keeping `capacity` recent events for at most `max_subscribers` readers.
    #[must_use]
    pub fn new(capacity: usize, max_subscribers: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            subscribers: Arc::new(AtomicUsize::new(0)),
            max_subscribers,
        }
    }

    /// True when someone listens (events are not even built otherwise).
    #[must_use]
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Publishes an event; never blocks.
    pub fn send(&self, ev: GraphEvent) {
        let _ = self.tx.send(ev);
    }

    /// Subscribes, or `None` when the subscriber cap is reached.
    #[must_use]
    pub fn subscribe(&self) -> Option<Subscription> {
        let prev = self.subscribers.fetch_add(1, Ordering::Relaxed);
        if prev >= self.max_subscribers {
            self.subscribers.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Subscription {
            rx: self.tx.subscribe(),
            count: self.subscribers.clone(),
        })
    }

    /// An agent-level event.
    pub fn agent_event(&self, kind: Kind, src: &AgentKey, message: String) {
        if !self.has_subscribers() {
            return;
        }
        self.send(GraphEvent::Agent {
            kind,
            src: src.clone(),
            message,
            at_ms: unix_ms(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_cap_is_enforced_and_released() {
        let hub = EventHub::new(8, 1);
        let a = hub.subscribe().expect("first");
        assert!(hub.subscribe().is_none());
        drop(a);
        assert!(hub.subscribe().is_some());
    }
}
