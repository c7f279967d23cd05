//! State-change events fanned out to `WatchEvents` subscribers.
//!
//! A `tokio::sync::broadcast` ring: ingest never waits for a reader (a slow subscriber misses
//! events and is told how many), and the number of subscribers is capped so memory stays bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use echomesh_proto::v1;
use tokio::sync::broadcast;

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
    tx: broadcast::Sender<v1::Event>,
    subscribers: Arc<AtomicUsize>,
    max_subscribers: usize,
}

/// A live subscription; dropping it frees the slot.
#[derive(Debug)]
pub struct Subscription {
    /// The events.
    pub rx: broadcast::Receiver<v1::Event>,
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
    pub fn send(&self, ev: v1::Event) {
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
    pub fn agent_event(
        &self,
        kind: v1::event::Kind,
        node: &str,
        network: v1::Network,
        msg: String,
    ) {
        if !self.has_subscribers() {
            return;
        }
        self.send(v1::Event {
            kind: kind as i32,
            at_unix_ms: unix_ms(),
            source_node: node.to_string(),
            source_network: network as i32,
            message: msg,
            ..v1::Event::default()
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
