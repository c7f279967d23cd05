//! Pinglist assignments: who each connected agent probes, pushed when it changes.
//!
//! Why debounced and fingerprinted: a hundred agents starting together must cause one round of
//! assignments, not a hundred, and an unchanged pinglist is not re-sent. Each sent assignment
//! gets a new generation, distinct across restarts, so a report measured under an old assignment
//! is recognised and mapped by target id.
//!
//! Why a round woken by the rotation alone computes only the lists that rotated: with staggered
//! epochs a rotating policy wakes the assigner several times per epoch, each time for a fraction
//! of the agents; computing every list each time would cost a whole round per wake-up.
//!
//! Why a full outbox does not hold up a round: an agent that stops reading its stream fills its
//! session's outbox, and waiting there would delay every agent after it, and every later round,
//! by the send timeout. Such an assignment waits in a task of its own and is dropped after
//! [`SEND_TIMEOUT`]; the next round sends it again.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use echomesh_proto::v1::{self, AggregatorMessage, aggregator_message};
use tokio::sync::mpsc::error::TrySendError;

use super::Ingest;
use super::session::Outbox;
use crate::graph::AgentKey;
use crate::policy::{Peer, PlannedTarget};

impl Ingest {
    /// Recomputes pinglists after membership changes until `shutdown` resolves.
    pub async fn run_assigner(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        // When the last round started: a rotation-only round looks for the lists whose epoch
        // moved since then.
        let mut last: Option<Duration> = None;
        loop {
            // A rotating policy changes its lists by itself at epoch boundaries.
            let refresh = self.inner.pinglist.refresh_in();
            let rotate = async move {
                match refresh {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            let mut membership = tokio::select! {
                () = self.inner.changed.notified() => true,
                () = rotate => false,
                () = &mut shutdown => return,
            };
            loop {
                tokio::select! {
                    () = tokio::time::sleep(self.inner.cfg.assign_debounce) => break,
                    () = self.inner.changed.notified() => membership = true,
                    () = &mut shutdown => return,
                }
            }
            let now = crate::policy::wall_clock();
            let rotated = match last {
                Some(since) if !membership => Some(since..now),
                _ => None,
            };
            self.reassign(rotated).await;
            last = Some(now);
        }
    }

    /// Sends every connected agent its current pinglist when it changed; an agent whose outbox
    /// is full gets it later or not at all (see [`SEND_TIMEOUT`]), without holding up the rest.
    ///
    /// With `rotated` (wall-clock times), only the agents whose lists the policy rotated within
    /// it ([`PinglistSource::rotated`](crate::policy::PinglistSource::rotated)).
    ///
    /// The round runs on the blocking pool at background priority ([`crate::background`]):
    /// planning and applying 10,000 lists takes a good part of a second at 5,000 nodes, and on a
    /// runtime worker it would stall every session polled by that worker (their acks and reads)
    /// for as long.
    async fn reassign(&self, rotated: Option<Range<Duration>>) {
        let this = self.clone();
        let rt = tokio::runtime::Handle::current();
        let round = move || this.reassign_round(&rt, rotated.as_ref());
        if let Err(e) = crate::background::run(round).await {
            tracing::error!(error = %e, "assignment round failed");
        }
    }

    /// One assignment round; `rt` runs the late deliveries.
    fn reassign_round(&self, rt: &tokio::runtime::Handle, rotated: Option<&Range<Duration>>) {
        let inner = &self.inner;
        let mut live: Vec<(AgentKey, Outbox, Arc<AtomicU64>)> = inner
            .sessions
            .iter()
            .map(|s| {
                (
                    s.key().clone(),
                    s.value().tx.clone(),
                    s.value().sent.clone(),
                )
            })
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        let peers: Vec<Peer> = live
            .iter()
            .filter_map(|(k, _, _)| {
                let a = inner.graph.agent(k)?;
                let addresses = a.info.lock().addresses.clone();
                Some(Peer {
                    key: k.clone(),
                    addresses,
                })
            })
            .collect();
        inner.pinglist.prepare(&peers);
        for (key, tx, sent) in live {
            // A rotation-only round skips the lists that did not rotate, but not one whose last
            // assignment was never delivered (`sent` reset to 0).
            let delivered = sent.load(Ordering::Relaxed) != 0;
            if delivered && rotated.is_some_and(|r| !inner.pinglist.rotated(&key, r.start, r.end)) {
                continue;
            }
            let Some(agent) = inner.graph.agent(&key) else {
                continue;
            };
            let planned = inner.pinglist.targets(&key, &peers);
            let ids: Vec<u64> = planned.iter().map(|t| t.id).collect();
            let print = fingerprint(&planned);
            if sent.load(Ordering::Relaxed) == print {
                continue;
            }
            sent.store(print, Ordering::Relaxed);
            // The records of targets leaving the list go with this assignment: keep their times.
            inner
                .ledger
                .absorb(&inner.graph, &agent, inner.cfg.coverage_period);
            let generation = inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
            inner
                .graph
                .apply_assignment(&agent, generation, &ids, inner.cfg.report_interval);
            let msg = AggregatorMessage {
                msg: Some(aggregator_message::Msg::Assignment(v1::Assignment {
                    generation,
                    targets: planned
                        .into_iter()
                        .map(|t| v1::Target {
                            id: t.id,
                            address: t.addr.to_string(),
                            network: t.network as i32,
                            node: t.node.to_string(),
                            expected_down: t.expected_down,
                        })
                        .collect(),
                    probe_interval_ms: ms(inner.cfg.probe_interval),
                    timeout_ms: ms(inner.cfg.probe_timeout),
                    payload_sizes: inner.cfg.payload_sizes.clone(),
                    report_interval_ms: ms(inner.cfg.report_interval),
                    down_after: inner.cfg.down_after,
                })),
            };
            match tx.try_send(Ok(msg)) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(msg)) => {
                    rt.spawn(deliver_late(key, tx, sent, print, msg));
                }
            }
        }
    }
}

/// How long an assignment waits for room in a full outbox before it is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits up to [`SEND_TIMEOUT`] to put `msg` (fingerprint `print`) in a full outbox. Waiting
/// senders are served in order and a full outbox refuses `try_send` while one waits, so a later
/// round's assignment for the same session queues behind this one.
async fn deliver_late(
    key: AgentKey,
    tx: Outbox,
    sent: Arc<AtomicU64>,
    print: u64,
    msg: Result<AggregatorMessage, tonic::Status>,
) {
    if tokio::time::timeout(SEND_TIMEOUT, tx.send(msg))
        .await
        .is_err()
    {
        // Not delivered: the next round sends it again instead of skipping it as unchanged
        // (unless a newer assignment was recorded meanwhile).
        let _ = sent.compare_exchange(print, 0, Ordering::Relaxed, Ordering::Relaxed);
        tracing::warn!(
            agent = %key,
            "agent did not take its assignment within {SEND_TIMEOUT:?}; dropped"
        );
    }
}

/// A non-zero digest of what an assignment tells the agent about its targets.
fn fingerprint(planned: &[PlannedTarget]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in planned {
        // The address too: ids do not change with it, and the agent must learn the new one.
        (t.id, t.addr, t.expected_down).hash(&mut h);
    }
    planned.len().hash(&mut h);
    h.finish().max(1)
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
