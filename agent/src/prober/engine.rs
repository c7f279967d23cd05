//! The engine loop and its handle: one task owns the sockets and the state, so the hot path has
//! no locks. It sends what is due, drains replies, expires probes past their deadline and sleeps
//! until the next probe or deadline; commands (new assignment, take a window) arrive on a channel.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::io::{Io, readable};
use super::state::Core;
use super::stats::EngineCounters;
use super::{EngineError, Outcome, ProbeSettings, TargetFlip, TargetSpec, TargetWindow};

/// Shortest and longest time between two wake-ups of a busy loop.
const MIN_TICK: Duration = Duration::from_millis(1);
const MAX_TICK: Duration = Duration::from_millis(10);
/// Probes a wake-up should find due, when the rate allows (64: at 6,000 probes/s one wake-up every
/// 10 ms; measured cheaper than 32, and batches of 64 are still evenly paced).
const PROBES_PER_TICK: u64 = 64;

/// How long the loop may sleep between sends: long enough that each wake-up sends a batch (a
/// wake-up costs a context switch, more than a probe does), short enough that the batch is small
/// and pacing stays even at every rate.
fn tick_ns(core: &Core) -> u64 {
    let s = core.settings();
    let spacing = s.interval.as_nanos() as u64 / (core.target_count() as u64).max(1);
    spacing
        .saturating_mul(PROBES_PER_TICK)
        .clamp(MIN_TICK.as_nanos() as u64, MAX_TICK.as_nanos() as u64)
}

enum Command {
    Assign(ProbeSettings, Vec<TargetSpec>),
    TakeWindow(oneshot::Sender<Vec<TargetWindow>>),
    Counters(oneshot::Sender<EngineCounters>),
}

enum Wake {
    Ready,
    Command(Option<Command>),
    Shutdown,
}

/// Runs the loop until the bounded run finishes, `shutdown` resolves, or the command channel closes.
async fn drive(
    core: &mut Core,
    io: &mut Io,
    mut cmds: Option<&mut mpsc::UnboundedReceiver<Command>>,
    flips: Option<&mpsc::Sender<TargetFlip>>,
    bounded: bool,
    shutdown: impl Future<Output = ()>,
) -> bool {
    tokio::pin!(shutdown);
    loop {
        let all_sent = io.send_due(core);
        // Expire only with the queue read to the end: after a stall the replies of probes whose
        // deadline passed may still be waiting there, stamped in time by the kernel.
        let drained = io.drain(core);
        if drained {
            core.expire(io.now_ns());
        }
        for flip in core.drain_flips() {
            if let Some(tx) = flips
                && tx.try_send(flip).is_err()
            {
                tracing::debug!(target_ip = %flip.addr, "flip channel full; the next report carries it");
            }
        }
        if bounded && core.finished() {
            return false;
        }
        let now = io.now_ns();
        let wake_at = if all_sent && drained {
            let next = match (core.next_due_at(), core.next_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // Coalesce: never wake again sooner than one tick from now.
            next.map(|at| at.max(now + tick_ns(core)))
        } else {
            Some(0) // more to send or read right away: just give the runtime a turn
        };
        let sleep = async {
            match wake_at {
                Some(ns) => tokio::time::sleep_until(io.instant(ns)).await,
                None => std::future::pending().await,
            }
        };
        let command = async {
            match cmds.as_deref_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        // Kernel receive timestamps make the RTT exact however late we read, so while probes are
        // still being sent the loop reads only when it wakes to send: one wake-up per tick
        // instead of one per reply. Only a bounded run with nothing left to send waits on the
        // sockets, to end as soon as the last reply is in.
        let listen = bounded && core.next_due_at().is_none();
        let (v4, v6) = if listen {
            (io.v4.as_ref(), io.v6.as_ref())
        } else {
            (None, None)
        };
        let wake = tokio::select! {
            biased;
            () = &mut shutdown => Wake::Shutdown,
            c = command => Wake::Command(c),
            () = readable(v4) => Wake::Ready,
            () = readable(v6) => Wake::Ready,
            () = sleep => Wake::Ready,
        };
        match wake {
            Wake::Ready => {}
            Wake::Shutdown | Wake::Command(None) => return true,
            Wake::Command(Some(Command::Assign(settings, targets))) => {
                if let Err(e) = io.ensure(&targets, &settings) {
                    tracing::error!(error = %e, "cannot open a socket for the new assignment; its targets will count as send errors");
                }
                core.assign(settings, targets, io.now_ns());
            }
            Wake::Command(Some(Command::TakeWindow(tx))) => {
                let _ = tx.send(core.take_window());
            }
            Wake::Command(Some(Command::Counters(tx))) => {
                let _ = tx.send(core.counters().clone());
            }
        }
    }
}

/// Probes every target `count` times and returns when every probe has been answered or timed out,
/// or early (with what was seen so far, settled or not) when `shutdown` resolves.
pub async fn run_bounded(
    settings: ProbeSettings,
    targets: Vec<TargetSpec>,
    count: u64,
    shutdown: impl Future<Output = ()>,
) -> Result<Outcome, EngineError> {
    settings.validate()?;
    let mut io = Io::open(&targets, &settings)?;
    let mut core = Core::new(settings, targets, io.now_ns(), Some(count));
    let interrupted = drive(&mut core, &mut io, None, None, true, shutdown).await;
    Ok(Outcome {
        targets: core.take_window(),
        counters: core.counters().clone(),
        interrupted,
    })
}

/// A running engine (run mode); dropping the handle stops it.
#[derive(Debug)]
pub struct EngineHandle {
    cmds: mpsc::UnboundedSender<Command>,
    flips: mpsc::Receiver<TargetFlip>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Assign(..) => "Assign",
            Command::TakeWindow(_) => "TakeWindow",
            Command::Counters(_) => "Counters",
        })
    }
}

/// Starts probing `targets` on the current tokio runtime. Fails at once (e.g. without CAP_NET_RAW)
/// rather than in the background.
pub fn start(
    settings: ProbeSettings,
    targets: Vec<TargetSpec>,
) -> Result<EngineHandle, EngineError> {
    settings.validate()?;
    let mut io = Io::open(&targets, &settings)?;
    let mut core = Core::new(settings, targets, io.now_ns(), None);
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    let (flip_tx, flip_rx) = mpsc::channel(1024);
    let task = tokio::spawn(async move {
        drive(
            &mut core,
            &mut io,
            Some(&mut cmd_rx),
            Some(&flip_tx),
            false,
            std::future::pending(),
        )
        .await;
    });
    Ok(EngineHandle {
        cmds: cmd_tx,
        flips: flip_rx,
        task,
    })
}

impl EngineHandle {
    /// False once the engine's task has ended (a socket error it could not survive, a panic).
    #[must_use]
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Replaces the targets and settings; stats of ids still present carry over.
    pub fn assign(
        &self,
        settings: ProbeSettings,
        targets: Vec<TargetSpec>,
    ) -> Result<(), EngineError> {
        settings.validate()?;
        // A closed channel means the engine is gone; `take_window` then reports nothing.
        let _ = self.cmds.send(Command::Assign(settings, targets));
        Ok(())
    }

    /// Every target's counters since the previous call (empty if the engine stopped).
    pub async fn take_window(&self) -> Vec<TargetWindow> {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Command::TakeWindow(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Engine-wide counters so far.
    pub async fn counters(&self) -> EngineCounters {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Command::Counters(tx)).is_err() {
            return EngineCounters::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Reachability changes, as they happen.
    pub fn flips(&mut self) -> &mut mpsc::Receiver<TargetFlip> {
        &mut self.flips
    }

    /// Stops the engine and waits for it.
    pub async fn shutdown(self) {
        drop(self.cmds);
        let _ = self.task.await;
    }
}
