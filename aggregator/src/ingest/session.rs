//! One agent session: Hello, then reports and alerts until the stream ends.
//!
//! Why one task per session with one bounded outbox: everything written back to the agent
//! (assignments, acks, a final error status) goes through it, so a slow agent slows only itself,
//! and a newer session for the same `(node, network)` can close the older one cleanly. Which of
//! two sessions is the newer is decided by [`claim`]: the agent process that started later.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use echomesh_proto::v1::{
    self, AgentMessage, AggregatorMessage, agent_message, agent_service_server::AgentService,
    aggregator_message, event::Kind,
};
use futures::{Stream, StreamExt as _};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::admit;
use super::claim::{self, Claim};
use super::inbound::Inbound;
use super::{Ingest, IngestErrorReason, validate_hello};
use crate::graph::{AgentEntry, MergeOutcome};
use dashmap::mapref::entry::Entry;

/// What the session task writes to its agent.
pub(super) type Outbox = mpsc::Sender<Result<AggregatorMessage, Status>>;

/// The open session of one agent.
#[derive(Debug)]
pub(super) struct SessionHandle {
    pub(super) id: u64,
    pub(super) tx: Outbox,
    pub(super) close: Arc<Notify>,
    /// Fingerprint of the last assignment sent on this session (0: none yet), so an unchanged
    /// pinglist is not re-sent, while a new session or an expected-down flip always is.
    pub(super) sent: Arc<AtomicU64>,
    /// Which process holds the session ([`claim`]).
    pub(super) claim: Claim,
}

impl Ingest {
    async fn run_session(
        self,
        mut inbound: impl Stream<Item = Result<Inbound, Status>> + Unpin + Send,
        tx: Outbox,
        authorization: Option<String>,
    ) {
        let inner = &self.inner;
        let identity = match self.authenticate(authorization.as_deref()).await {
            Ok(id) => id,
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        };
        let first = tokio::time::timeout(inner.cfg.hello_timeout, next(&mut inbound)).await;
        let hello = match first {
            Err(_) => {
                self.count_error(IngestErrorReason::HelloTimeout);
                let _ = tx
                    .send(Err(Status::deadline_exceeded(
                        "no Hello within the hello timeout",
                    )))
                    .await;
                return;
            }
            Ok(Err(status)) => {
                let _ = tx.send(Err(self.map_inbound_error(status))).await;
                return;
            }
            Ok(Ok(None)) => return,
            Ok(Ok(Some(Inbound::Message(AgentMessage {
                msg: Some(agent_message::Msg::Hello(h)),
            })))) => h,
            Ok(Ok(Some(other))) => {
                self.count_error(IngestErrorReason::FirstNotHello);
                let what = match other {
                    Inbound::Report(_)
                    | Inbound::Message(AgentMessage {
                        msg: Some(agent_message::Msg::Report(_)),
                    }) => "Report",
                    Inbound::Message(AgentMessage {
                        msg: Some(agent_message::Msg::Alert(_)),
                    }) => "Alert",
                    _ => "an empty message",
                };
                let _ = tx
                    .send(Err(Status::failed_precondition(format!(
                        "the first message of a session must be Hello, got {what}"
                    ))))
                    .await;
                return;
            }
        };
        let (key, info) = match validate_hello(&hello) {
            Ok(v) => v,
            Err(e) => {
                self.count_error(IngestErrorReason::BadHello);
                let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
                return;
            }
        };
        if let Err(status) = self.bind(identity.as_ref(), &key, &info) {
            let _ = tx.send(Err(status)).await;
            return;
        }
        let id = inner.next_session.fetch_add(1, Ordering::Relaxed);
        let assigned = Arc::new(AtomicU64::new(0));
        let close = Arc::new(Notify::new());
        let claim = Claim {
            authenticated: identity.is_some(),
            ..Claim::of(&hello)
        };
        let handle = SessionHandle {
            id,
            tx: tx.clone(),
            close: close.clone(),
            sent: assigned.clone(),
            claim: claim.clone(),
        };
        // A returning agent replaces its own session whatever the count; a new one needs room.
        // (Counted before taking the entry's lock: `len` locks every shard. Hellos racing here
        // may overshoot the cap by the few that pass together.)
        if inner.sessions.len() >= inner.cfg.max_agents && !inner.sessions.contains_key(&key) {
            self.count_error(IngestErrorReason::TooManyAgents);
            tracing::warn!(agent = %key, max = inner.cfg.max_agents, "session refused: --max-agents reached");
            let _ = tx
                .send(Err(Status::resource_exhausted(format!(
                    "the aggregator holds its maximum of {} agent sessions (--max-agents); \
                     {key} was refused",
                    inner.cfg.max_agents
                ))))
                .await;
            return;
        }
        // Decided under the entry's lock, so two Hellos racing cannot both win.
        let replaced = match inner.sessions.entry(key.clone()) {
            Entry::Vacant(v) => {
                v.insert(handle);
                None
            }
            Entry::Occupied(mut o) => {
                if claim::takeover_refused(&o.get().claim, &claim) {
                    drop(o);
                    let _ = tx
                        .send(Err(Status::permission_denied(
                            "an authenticated agent holds this node and network; an \
                             unauthenticated session may not replace it",
                        )))
                        .await;
                    return;
                }
                if claim::stands_by(&o.get().claim, &claim) {
                    let status = claim::standby_status(&o.get().claim);
                    drop(o);
                    self.count_error(IngestErrorReason::StandBy);
                    tracing::info!(agent = %key, pod = %claim.pod, "a newer agent of this node and network is active; told to stand by");
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                Some(o.insert(handle))
            }
        };
        if inner.cfg.hello_zones && !hello.zone.is_empty() {
            inner.graph.set_node_zone(&key.node, &hello.zone);
        }
        let agent = inner.graph.upsert_agent(key.clone(), info);
        self.assignment_applied(&key, u64::MAX);
        let bounds = admit::Bounds::new(&inner.cfg);
        let mut was_assigned = false;
        let events = &inner.graph.events;
        if let Some(old) = replaced {
            // An older agent is told to stand by, so it does not come back to take over; the same
            // pod's earlier session is a stale connection of (or before) this process.
            let status = if claim::stands_by(&claim, &old.claim) {
                claim::standby_status(&claim)
            } else {
                Status::aborted("replaced by a newer session for the same node and network")
            };
            let _ = old.tx.try_send(Err(status));
            old.close.notify_one();
            tracing::warn!(agent = %key, "a newer session replaced the existing one");
            events.agent_event(
                Kind::AgentReplaced,
                &key,
                format!("a newer session replaced session {} of {key}", old.id),
            );
        } else {
            events.agent_event(Kind::AgentConnected, &key, String::new());
        }
        tracing::info!(agent = %key, session = id, "agent connected");
        self.membership_changed();

        let closing = self.closing();
        tokio::pin!(closing);
        loop {
            let msg = tokio::select! {
                () = close.notified() => break,
                () = &mut closing => {
                    let _ = tx.try_send(Err(Status::unavailable("aggregator shutting down")));
                    break;
                }
                m = next(&mut inbound) => m,
            };
            let msg = match msg {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(status) => {
                    let _ = tx.send(Err(self.map_inbound_error(status))).await;
                    break;
                }
            };
            // Latched: a later assignment that could not be delivered resets the fingerprint.
            was_assigned |= assigned.load(Ordering::Relaxed) != 0;
            let msg = match msg {
                Inbound::Report(bytes) => {
                    let step = inner.reports.with(|buf| match buf.decode(&bytes) {
                        Ok(r) => self.take_report(&agent, &bounds, was_assigned, r),
                        Err(e) => Err(self.map_inbound_error(Status::internal(e.to_string()))),
                    });
                    if !reply(&tx, step).await {
                        break;
                    }
                    continue;
                }
                Inbound::Message(m) => m,
            };
            match msg.msg {
                Some(agent_message::Msg::Report(r)) => {
                    let step = self.take_report(&agent, &bounds, was_assigned, &r);
                    if !reply(&tx, step).await {
                        break;
                    }
                }
                Some(agent_message::Msg::Alert(a)) => {
                    inner.graph.apply_alert(&agent, &a);
                }
                Some(agent_message::Msg::AssignmentRejected(r)) => {
                    self.assignment_rejected(&key, &r);
                }
                Some(agent_message::Msg::Hello(_)) => {
                    self.count_error(IngestErrorReason::RepeatedHello);
                    let _ = tx
                        .send(Err(Status::failed_precondition(
                            "Hello may only be the first message of a session",
                        )))
                        .await;
                    break;
                }
                None => {}
            }
        }

        let still_current = inner.sessions.remove_if(&key, |_, s| s.id == id).is_some();
        if still_current {
            inner.graph.disconnect_agent(&key);
            events.agent_event(Kind::AgentDisconnected, &key, String::new());
            tracing::info!(agent = %key, session = id, "agent disconnected");
            self.membership_changed();
        }
    }

    /// Admits and merges one report; the sequence number to acknowledge, or the status that ends
    /// the session.
    fn take_report(
        &self,
        agent: &AgentEntry,
        bounds: &admit::Bounds,
        assigned: bool,
        r: &v1::Report,
    ) -> Result<u64, Status> {
        if let Err(e) = admit::admit(bounds, agent, assigned, r) {
            self.count_error(IngestErrorReason::InadmissibleReport);
            tracing::warn!(agent = %agent.key, error = %e, "report refused");
            return Err(e.status());
        }
        self.assignment_applied(&agent.key, r.generation);
        let last = agent.slab.lock().last_seq();
        self.count_gap(&agent.key, last, r.seq);
        match self.inner.graph.merge_report(agent, r) {
            Ok(MergeOutcome::Merged { .. } | MergeOutcome::Duplicate) => Ok(r.seq),
            Err(e) => {
                self.count_error(IngestErrorReason::BadReport);
                Err(Status::invalid_argument(e.to_string()))
            }
        }
    }

    /// Starts a session over `request`'s messages; the stream is what goes back to the agent.
    pub(super) fn open_session(
        &self,
        request: Request<impl Stream<Item = Result<Inbound, Status>> + Unpin + Send + 'static>,
    ) -> Response<SessionStream> {
        let (tx, rx) = mpsc::channel(self.inner.cfg.session_buffer.max(4));
        // A value that is not visible ASCII is passed on as such, to be refused as malformed.
        let authorization = request.metadata().get(crate::auth::AUTHORIZATION).map(|v| {
            v.to_str()
                .map_or_else(|_| "invalid".to_owned(), str::to_owned)
        });
        tokio::spawn(
            self.clone()
                .run_session(request.into_inner(), tx, authorization),
        );
        Response::new(Box::pin(ReceiverStream::new(rx)))
    }
}

/// The next message, as `Streaming::message` returns it.
async fn next<T>(
    s: &mut (impl Stream<Item = Result<T, Status>> + Unpin),
) -> Result<Option<T>, Status> {
    s.next().await.transpose()
}

/// Acknowledges `step`'s report, or ends the session with its status; false when the session
/// is over.
async fn reply(tx: &Outbox, step: Result<u64, Status>) -> bool {
    match step {
        Ok(seq) => {
            let ack = AggregatorMessage {
                msg: Some(aggregator_message::Msg::Ack(v1::Ack { seq })),
            };
            tx.send(Ok(ack)).await.is_ok()
        }
        Err(status) => {
            let _ = tx.send(Err(status)).await;
            false
        }
    }
}

/// What the session task sends back to its agent.
pub(super) type SessionStream =
    Pin<Box<dyn Stream<Item = Result<AggregatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for Ingest {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        Ok(self.open_session(request.map(|s| s.map(|m| m.map(Inbound::Message)))))
    }
}
