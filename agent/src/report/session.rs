//! The run loop: one task owns the engine, the replay buffer and the stream, so nothing is shared
//! and nothing is locked.
//!
//! It says Hello on every new stream, applies each Assignment to the engine, takes a window every
//! report interval and queues it as a Report, forwards the engine's reachability flips at once as
//! Alerts, and forgets reports when the aggregator acks them. Windows keep being taken while
//! disconnected; reconnects back off exponentially with jitter, so a restarted aggregator is not
//! hit by every agent at the same instant, and the backoff starts over once a stream was assigned.
//! Told that a newer agent of the same node and network is active, it stands by instead
//! ([`super::standby`]).
//!
//! The loop waits for one `Event` at a time and hands it to a handler; the stream's own rules
//! (replay, order) live in `stream`.

mod stream;

use std::future::Future;
use std::time::{Duration, SystemTime};

use echomesh_proto::v1::{self, AggregatorMessage, aggregator_message};
use echomesh_runtime::Backoff;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::args::RunError;
use super::connect::Connector;
use super::engine::{ProbeEngine, StartEngine};
use super::guard::{Guard, Rejection};
use super::replay::ReplayBuffer;
use super::standby;
use super::wire::{self, InForce};
use crate::metrics::{AgentMetrics, ReplayStatus};
use crate::prober::{EngineError, TargetFlip};
use stream::Stream;

/// First wait after a failed or lost session.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// How long an assigned session must last before the reconnect backoff starts over.
pub const STABLE_SESSION: Duration = Duration::from_secs(10);
/// The replay buffer warns once per this many dropped reports (about a minute at 1 s reports).
const DROP_WARN_EVERY: u64 = 60;

/// Knobs of the loop that are not part of the Hello.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Reports kept for replay.
    pub replay_buffer: usize,
    /// Encoded bytes of reports kept for replay.
    pub replay_buffer_bytes: usize,
    /// Longest wait between reconnect attempts.
    pub max_backoff: Duration,
    /// What an assignment may make the agent probe.
    pub guard: Guard,
}

/// What woke the loop.
#[derive(Debug)]
enum Event {
    Shutdown,
    Tick,
    Flip(TargetFlip),
    Message(Result<Option<AggregatorMessage>, tonic::Status>),
    Reconnect,
}

/// The loop's state between events.
struct Reporter<S: StartEngine, C> {
    hello: v1::Hello,
    connector: C,
    starter: S,
    guard: Guard,
    engine: Option<S::Engine>,
    metrics: AgentMetrics,
    backoff: Backoff,
    buffer: ReplayBuffer,
    current: InForce,
    stream: Option<Stream>,
    reconnect_at: Instant,
    seq: u64,
    tick: Option<Interval>,
    window_start: SystemTime,
}

/// Runs the loop until `shutdown` resolves: streams to whatever `connector` reaches, probing
/// with the engine `starter` starts on the first assignment.
pub async fn drive<S: StartEngine, C: Connector>(
    hello: v1::Hello,
    settings: LoopSettings,
    connector: C,
    starter: S,
    metrics: AgentMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let mut r = Reporter {
        hello,
        connector,
        starter,
        guard: settings.guard,
        engine: None,
        metrics,
        backoff: Backoff::new(MIN_BACKOFF, settings.max_backoff),
        buffer: ReplayBuffer::new(settings.replay_buffer)
            .with_max_bytes(settings.replay_buffer_bytes),
        current: InForce::default(),
        stream: None,
        reconnect_at: Instant::now(),
        seq: 0,
        tick: None,
        window_start: SystemTime::now(),
    };
    tokio::pin!(shutdown);
    let result = loop {
        match r.next_event(&mut shutdown).await {
            Event::Shutdown => break Ok(()),
            event => {
                if let Err(e) = r.handle(event).await {
                    break Err(e);
                }
            }
        }
    };
    if let Some(e) = r.engine.take() {
        e.shutdown().await;
    }
    result
}

impl<S: StartEngine, C: Connector> Reporter<S, C> {
    async fn next_event(&mut self, shutdown: &mut (impl Future<Output = ()> + Unpin)) -> Event {
        let reconnect_at = self.stream.is_none().then_some(self.reconnect_at);
        let Self {
            tick,
            engine,
            stream,
            ..
        } = self;
        let tick = async {
            match tick.as_mut() {
                Some(t) => t.tick().await,
                None => std::future::pending().await,
            }
        };
        let flip = async {
            match engine.as_mut() {
                Some(e) => e.flips().recv().await,
                None => std::future::pending().await,
            }
        };
        let message = async {
            match stream.as_mut() {
                Some(s) => s.message().await,
                None => std::future::pending().await,
            }
        };
        let reconnect = async {
            match reconnect_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown => Event::Shutdown,
            _ = tick => Event::Tick,
            Some(f) = flip => Event::Flip(f),
            m = message => Event::Message(m),
            () = reconnect => Event::Reconnect,
        }
    }

    async fn handle(&mut self, event: Event) -> Result<(), RunError> {
        match event {
            Event::Shutdown => {}
            Event::Reconnect => self.reconnect().await,
            Event::Message(Ok(Some(m))) => self.on_message(m)?,
            Event::Message(end) => self.on_end(end),
            Event::Flip(f) => self.on_flip(&f),
            Event::Tick => self.on_tick().await,
        }
        Ok(())
    }

    async fn reconnect(&mut self) {
        let opened = match self.connector.connect().await {
            Ok(ch) => match self.connector.authorization() {
                Ok(auth) => Stream::open(ch, self.hello.clone(), auth).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match opened {
            Ok(s) => {
                tracing::info!(aggregator = %self.connector.target(), buffered = self.buffer.len(), "session open");
                self.stream = Some(s);
            }
            Err(e) if standby::refused_for_standby(&e) => self.stand_by(&e.to_string()),
            Err(e) => {
                let wait = self.backoff.next_wait();
                tracing::warn!(aggregator = %self.connector.target(), error = %e, retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "cannot open session");
                self.reconnect_at = Instant::now() + wait;
            }
        }
    }

    fn on_message(&mut self, m: AggregatorMessage) -> Result<(), RunError> {
        match m.msg {
            Some(aggregator_message::Msg::Assignment(a)) => self.on_assignment(&a)?,
            Some(aggregator_message::Msg::Ack(ack)) => {
                self.buffer.ack(ack.seq);
                self.publish_replay();
                self.flush();
            }
            None => {}
        }
        Ok(())
    }

    fn on_assignment(&mut self, a: &v1::Assignment) -> Result<(), RunError> {
        let (settings, targets) = match self.guard.check(a) {
            Ok(v) => v,
            Err(why) => {
                self.reject(a, &why.to_string());
                return Ok(());
            }
        };
        let applied = match self.engine.as_ref() {
            Some(e) => e.assign(settings, targets),
            None => match self.starter.start(settings, targets) {
                Ok(e) => {
                    self.engine = Some(e);
                    Ok(())
                }
                // Without sockets nothing can ever be probed: that is the process's end.
                Err(e @ EngineError::Socket(_)) => return Err(e.into()),
                Err(e) => Err(e),
            },
        };
        if let Err(err) = applied {
            self.reject(a, &Rejection::Settings(err.to_string()).to_string());
            return Ok(());
        }
        let next = InForce::new(a);
        if self.tick.is_none() || self.current.report_interval != next.report_interval {
            let every = next.report_interval;
            let mut t = tokio::time::interval_at(Instant::now() + every, every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            self.tick = Some(t);
        }
        self.current = next;
        tracing::info!(
            generation = a.generation,
            targets = a.targets.len(),
            "assignment applied"
        );
        if let Some(s) = self.stream.as_mut() {
            s.assigned = true;
        }
        self.flush();
        Ok(())
    }

    /// Refuses `a` as a whole: counted, logged, told to the aggregator; the last good assignment
    /// keeps running (and its reports keep flowing on this stream).
    fn reject(&mut self, a: &v1::Assignment, why: &str) {
        self.metrics.assignment_rejected();
        tracing::warn!(
            generation = a.generation,
            targets = a.targets.len(),
            reason = why,
            "assignment refused; keeping the last good one"
        );
        if let Some(s) = self.stream.as_mut() {
            s.send_now(super::guard::rejected_msg(a.generation, why));
            if self.engine.is_some() {
                s.assigned = true;
            }
        }
        self.flush();
    }

    fn on_end(&mut self, end: Result<Option<AggregatorMessage>, tonic::Status>) {
        if let Err(st) = &end
            && standby::is_standby(st)
        {
            self.stream = None;
            self.stand_by(st.message());
            return;
        }
        match end {
            Err(st) => {
                tracing::warn!(code = ?st.code(), message = st.message(), "session ended by the aggregator");
            }
            _ => tracing::warn!("session closed"),
        }
        // Only a session that was assigned and lasted starts the backoff over: one kicked right
        // after its assignment (a forged agent replacing it, a crash-looping aggregator) backs
        // off from its first failure like any other.
        if let Some(s) = self.stream.take()
            && s.assigned
            && s.opened.elapsed() >= STABLE_SESSION
        {
            self.backoff.reset();
        }
        self.reconnect_at = Instant::now() + self.backoff.next_wait();
    }

    /// A newer agent of this node and network is active: ask again only after
    /// [`standby::STANDBY_WAIT`], without fighting it for the session.
    fn stand_by(&mut self, why: &str) {
        let wait = standby::STANDBY_WAIT;
        tracing::info!(aggregator = %self.connector.target(), reason = why, retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "standing by: a newer agent of this node and network is active");
        self.reconnect_at = Instant::now() + wait;
    }

    fn on_flip(&mut self, f: &TargetFlip) {
        if let Some(s) = self.stream.as_ref()
            && let Some(m) = wire::alert(f, &self.current, SystemTime::now())
        {
            s.send_now(m);
        }
    }

    async fn on_tick(&mut self) {
        let Some(e) = self.engine.as_ref() else {
            return;
        };
        if !e.is_running() {
            // Reports would claim empty windows as measurements: send none, so the aggregator
            // turns this agent's edges UNKNOWN, and fail /healthz so the agent is restarted.
            if !self.metrics.engine_stopped() {
                tracing::error!("the probe engine stopped; no more reports, /healthz fails");
                self.metrics.set_engine_stopped();
            }
            return;
        }
        let windows = e.take_window().await;
        self.metrics.record_windows(&windows);
        self.metrics.set_engine(e.counters().await);
        self.metrics.set_targets(self.current.len());
        let now = SystemTime::now();
        self.seq += 1;
        let report = wire::report(self.seq, &windows, &self.current, self.window_start, now);
        self.window_start = now;
        self.buffer.push(report);
        let dropped = self.buffer.dropped();
        if dropped > 0 && dropped % DROP_WARN_EVERY == 1 {
            tracing::warn!(dropped, "replay buffer full; oldest reports dropped");
        }
        self.publish_replay();
        // Past the grace period the buffer goes out even if a peer is still missing.
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(s) = self.stream.as_mut() {
            s.flush(&self.buffer, &self.current);
        }
    }

    fn publish_replay(&self) {
        self.metrics.set_replay(ReplayStatus {
            buffered: self.buffer.len(),
            dropped: self.buffer.dropped(),
        });
    }
}
