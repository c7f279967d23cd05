//! The probe engine: sends evenly paced echo requests to every target, matches replies and errors,
//! and keeps per-target windows of counters and RTT histograms.
//!
//! One task owns the sockets and the state, so the hot path has no locks: it sends what is due
//! (stamping each packet just before its syscall), drains replies in `recvmmsg` batches, expires
//! probes past their deadline, and sleeps until the next probe or deadline. Everything else talks
//! to it through [`EngineHandle`] (run mode) or waits for [`run_bounded`] (one-shot mode).
//!
//! - [`schedule`]: even pacing of N targets over the interval.
//! - [`state`]: in-flight table, timeouts, duplicates, reordering, reachability flips (pure).

pub mod schedule;
pub mod state;

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::icmp::packet::{self, ICMP_HEADER_LEN};
use crate::icmp::socket::{Family, IcmpSocket, SocketError, SocketOptions, realtime_ns};
use crate::icmp::{Authenticator, PAYLOAD_HEADER_LEN, ProbeStamp};
use crate::stats::{EngineCounters, TargetStats};
use state::Core;

/// Largest payload accepted: an IPv4 datagram is at most 65,535 bytes including 28 bytes of headers.
pub const MAX_PAYLOAD: usize = 65_507;
/// Probes sent before the loop stops to read replies.
const SEND_BUDGET: usize = 512;
/// `recvmmsg` batches read per socket before the loop goes back to sending.
const RECV_BUDGET: usize = 64;

/// How targets are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Time between two probes to the same target.
    pub interval: Duration,
    /// How long to wait for a reply before a probe counts as lost.
    pub timeout: Duration,
    /// Bytes after the 8-byte ICMP header (at least 32: the signed probe stamp).
    pub payload_size: usize,
    /// Consecutive losses after which a target is reported unreachable.
    pub down_after: u32,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            payload_size: 56,
            down_after: 3,
        }
    }
}

impl ProbeSettings {
    /// Checks the settings, saying what is wrong.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::InvalidSettings(m));
        if self.interval.is_zero() {
            return bad("the probe interval must be greater than zero".into());
        }
        if self.timeout.is_zero() {
            return bad("the probe timeout must be greater than zero".into());
        }
        if !(PAYLOAD_HEADER_LEN..=MAX_PAYLOAD).contains(&self.payload_size) {
            return bad(format!(
                "payload size {} is out of range: it must be between {PAYLOAD_HEADER_LEN} (the signed \
                 probe stamp) and {MAX_PAYLOAD} bytes",
                self.payload_size
            ));
        }
        Ok(())
    }
}

/// One target: a stable id (from the assignment) and an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetSpec {
    /// Stable id; stats follow the id across reassignments.
    pub id: u64,
    /// Address probed.
    pub addr: IpAddr,
}

/// One target's counters for one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetWindow {
    /// Target id.
    pub id: u64,
    /// Target address.
    pub addr: IpAddr,
    /// What happened in the window.
    pub stats: TargetStats,
}

/// A target became reachable or unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetFlip {
    /// Target id.
    pub id: u64,
    /// Target address.
    pub addr: IpAddr,
    /// The new state.
    pub reachable: bool,
    /// Losses in a row when it went unreachable (0 when it came back).
    pub consecutive_losses: u32,
}

/// Why the engine could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A socket could not be opened or configured.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The settings make no sense.
    #[error("invalid probe settings: {0}")]
    InvalidSettings(String),
}

/// The result of a bounded run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every target's stats over the whole run, in target order.
    pub targets: Vec<TargetWindow>,
    /// Engine-wide counters.
    pub counters: EngineCounters,
    /// True when the run was cut short by the shutdown signal.
    pub interrupted: bool,
}

/// Kernel buffer sizes: room for a scheduling stall of ~100 ms at 100k replies/s (plus their TX
/// timestamps, which share the receive budget); memory is only used while packets wait.
fn socket_options(payload: usize) -> SocketOptions {
    SocketOptions {
        recv_buffer: 32 << 20,
        send_buffer: 4 << 20,
        max_datagram: payload + ICMP_HEADER_LEN + 60 + 64,
    }
}

struct Io {
    auth: Authenticator,
    v4: Option<IcmpSocket>,
    v6: Option<IcmpSocket>,
    buf: Vec<u8>,
    base: Instant,
    drops: [u32; 2],
}

impl Io {
    fn open(targets: &[TargetSpec], settings: &ProbeSettings) -> Result<Self, EngineError> {
        let mut io = Self {
            auth: Authenticator::random(),
            v4: None,
            v6: None,
            buf: vec![0u8; ICMP_HEADER_LEN + settings.payload_size],
            base: Instant::now(),
            drops: [0; 2],
        };
        io.ensure(targets, settings)?;
        Ok(io)
    }

    /// Opens the sockets the targets need and sizes buffers for the payload.
    fn ensure(
        &mut self,
        targets: &[TargetSpec],
        settings: &ProbeSettings,
    ) -> Result<(), EngineError> {
        let opts = socket_options(settings.payload_size);
        if self.v4.is_none() && targets.iter().any(|t| t.addr.is_ipv4()) {
            self.v4 = Some(IcmpSocket::open(Family::V4, self.auth.ident(), opts)?);
        }
        if self.v6.is_none() && targets.iter().any(|t| t.addr.is_ipv6()) {
            self.v6 = Some(IcmpSocket::open(Family::V6, self.auth.ident(), opts)?);
        }
        self.buf.resize(ICMP_HEADER_LEN + settings.payload_size, 0);
        Ok(())
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sends what is due; returns false when it stopped early (budget or full send buffer).
    fn send_due(&mut self, core: &mut Core) -> bool {
        let now = self.now_ns();
        let payload = core.settings().payload_size;
        for _ in 0..SEND_BUDGET {
            let Some(due) = core.next_due(now) else {
                return true;
            };
            let sock = match due.addr {
                IpAddr::V4(_) => self.v4.as_ref(),
                IpAddr::V6(_) => self.v6.as_ref(),
            };
            let Some(sock) = sock else {
                core.send_failed(due, now);
                continue;
            };
            let sent_ns = realtime_ns();
            let stamp = ProbeStamp {
                global: due.global,
                target: due.target,
                seq: due.seq,
                sent_ns,
            };
            let len =
                packet::build_echo_request(&mut self.buf, &self.auth, due.addr, &stamp, payload);
            match sock.send_to(&self.buf[..len], due.addr, due.global as u32) {
                Ok(()) => core.sent(due, sent_ns, now),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    // Full queue: retry this probe on the next round, when the queue has drained.
                    return false;
                }
                Err(e) => {
                    tracing::debug!(target_ip = %due.addr, error = %e, "send failed");
                    core.send_failed(due, now);
                }
            }
        }
        false
    }

    /// Reads everything queued on both sockets into `core`.
    /// Returns false when the receive budget ran out with datagrams still queued.
    fn drain(&mut self, core: &mut Core) -> bool {
        let mut emptied = true;
        let Io {
            auth,
            v4,
            v6,
            drops,
            ..
        } = self;
        for (slot, sock) in [(0, v4.as_mut()), (1, v6.as_mut())] {
            let Some(sock) = sock else { continue };
            // TX stamps first: a reply is then matched against the best send time we have.
            if let Err(e) = sock.recv_tx_stamps(|key, ns| core.tx_stamp(key, ns)) {
                tracing::debug!(error = %e, "reading TX timestamps failed");
                core.counters_mut().recv_errors += 1;
            }
            let mut budget = RECV_BUDGET;
            loop {
                if budget == 0 {
                    emptied = false;
                    break;
                }
                budget -= 1;
                let n = match sock.recv_batch() {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "receive failed");
                        core.counters_mut().recv_errors += 1;
                        break;
                    }
                };
                for i in 0..n {
                    let Some(r) = sock.received(i) else { continue };
                    if let Some(d) = r.drops {
                        drops[slot] = d;
                    }
                    let parsed = match r.from {
                        IpAddr::V4(_) => packet::parse_v4(r.data, auth),
                        IpAddr::V6(from) => packet::parse_v6(r.data, from, None, auth),
                    };
                    match parsed {
                        Ok(pkt) => core.inbound(pkt, r.rx_ns.unwrap_or_else(realtime_ns)),
                        Err(why) => core.counters_mut().reject(why),
                    }
                }
                if n < crate::icmp::socket::RECV_BATCH {
                    break;
                }
            }
        }
        core.counters_mut().socket_drops = u64::from(drops[0]) + u64::from(drops[1]);
        emptied
    }

    fn instant(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }
}

async fn readable(sock: Option<&IcmpSocket>) {
    match sock {
        Some(s) => {
            if s.readable().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

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
