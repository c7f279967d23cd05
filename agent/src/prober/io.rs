//! The engine's side of the kernel: the two raw sockets, the send buffer and the clock that
//! probe stamps and deadlines are measured on.
//!
//! Kept apart from the loop so that [`super::state`] stays pure: it decides what is due and
//! this module does the syscalls, with send and receive budgets so neither starves the other.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::state::{Core, Due};
use super::stats::SendError;
use super::{EngineError, ProbeSettings, TargetSpec};
use crate::icmp::batch::{self, BatchEnd, SEND_BATCH, SendBatch};
use crate::icmp::packet::{self, ICMP_HEADER_LEN};
use crate::icmp::socket::{Family, IcmpSocket, SocketOptions, realtime_ns};
use crate::icmp::{Authenticator, ProbeStamp};

/// Probes sent before the loop stops to read replies.
const SEND_BUDGET: usize = 512;
/// `recvmmsg` batches read per socket before the loop goes back to sending.
const RECV_BUDGET: usize = 64;

/// Kernel buffer sizes: room for a scheduling stall of ~100 ms at 100k replies/s (plus their TX
/// timestamps, which share the receive budget); memory is only used while packets wait.
fn socket_options(payload: usize) -> SocketOptions {
    SocketOptions {
        recv_buffer: 32 << 20,
        send_buffer: 4 << 20,
        max_datagram: payload + ICMP_HEADER_LEN + 60 + 64,
    }
}

/// The sockets, the packet buffer and the monotonic base that probe times count from.
pub(super) struct Io {
    auth: Authenticator,
    pub(super) v4: Option<IcmpSocket>,
    pub(super) v6: Option<IcmpSocket>,
    buf: Vec<u8>,
    batch: SendBatch,
    /// The probes in `batch`, in schedule order.
    dues: Vec<Due>,
    base: Instant,
    drops: [u32; 2],
}

impl Io {
    pub(super) fn open(
        targets: &[TargetSpec],
        settings: &ProbeSettings,
    ) -> Result<Self, EngineError> {
        let mut io = Self {
            auth: Authenticator::random(),
            v4: None,
            v6: None,
            buf: vec![0u8; ICMP_HEADER_LEN + settings.max_payload()],
            batch: SendBatch::new(ICMP_HEADER_LEN + settings.max_payload()),
            dues: Vec::with_capacity(SEND_BATCH),
            base: Instant::now(),
            drops: [0; 2],
        };
        io.ensure(targets, settings)?;
        Ok(io)
    }

    /// Opens the sockets the targets need and sizes buffers for the payload.
    pub(super) fn ensure(
        &mut self,
        targets: &[TargetSpec],
        settings: &ProbeSettings,
    ) -> Result<(), EngineError> {
        let opts = socket_options(settings.max_payload());
        if self.v4.is_none() && targets.iter().any(|t| t.addr.is_ipv4()) {
            self.v4 = Some(IcmpSocket::open(Family::V4, self.auth.ident(), opts)?);
        }
        if self.v6.is_none() && targets.iter().any(|t| t.addr.is_ipv6()) {
            self.v6 = Some(IcmpSocket::open(Family::V6, self.auth.ident(), opts)?);
        }
        self.buf.resize(ICMP_HEADER_LEN + settings.max_payload(), 0);
        if self.batch.max_packet() != self.buf.len() {
            self.batch = SendBatch::new(self.buf.len());
        }
        Ok(())
    }

    pub(super) fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sends what is due; returns false when it stopped early (budget or full send buffer).
    ///
    /// Probes go out in `sendmmsg` batches of consecutive due probes of one address family while
    /// the socket has kernel TX timestamps ([`IcmpSocket::batches`]), one `sendmsg` each otherwise.
    /// Results are applied to `core` in schedule order, so a probe the full queue kept back is
    /// sent on the next round under the same number.
    pub(super) fn send_due(&mut self, core: &mut Core) -> bool {
        let now = self.now_ns();
        let mut handled = 0;
        while handled < SEND_BUDGET {
            let Some(first) = core.next_due(now) else {
                return true;
            };
            let sock = match first.addr {
                IpAddr::V4(_) => self.v4.as_ref(),
                IpAddr::V6(_) => self.v6.as_ref(),
            };
            let Some(sock) = sock else {
                core.send_failed(first, now, SendError::NoSocket);
                handled += 1;
                continue;
            };
            let done = if sock.batches() && first.payload <= batch::MAX_BATCHED_PAYLOAD {
                send_batch(
                    sock,
                    &mut self.batch,
                    &mut self.dues,
                    &self.auth,
                    core,
                    first,
                    now,
                )
            } else {
                send_one(sock, &mut self.buf, &self.auth, core, first, now)
            };
            match done {
                Some(n) => handled += n,
                // Full queue: retry on the next round, when the queue has drained.
                None => return false,
            }
        }
        false
    }

    /// Reads everything queued on both sockets into `core`.
    /// Returns false when the receive budget ran out with datagrams still queued.
    pub(super) fn drain(&mut self, core: &mut Core) -> bool {
        let mut emptied = true;
        let Io {
            auth,
            v4,
            v6,
            drops,
            base,
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
                // Read after the kernel received them: an upper bound for every RTT in the batch.
                let now = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
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
                        Ok(pkt) => core.inbound(pkt, r.rx_ns.unwrap_or_else(realtime_ns), now),
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

    pub(super) fn instant(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }
}

/// The error a failed send counts as.
fn send_error(e: &io::Error) -> SendError {
    e.raw_os_error()
        .map_or(SendError::Unreported, SendError::Os)
}

/// Sends `due` alone, stamped immediately before its own `sendmsg`; the probes handled (1), or
/// `None` when the send queue is full.
fn send_one(
    sock: &IcmpSocket,
    buf: &mut [u8],
    auth: &Authenticator,
    core: &mut Core,
    due: Due,
    now: u64,
) -> Option<usize> {
    let sent_ns = realtime_ns();
    let stamp = ProbeStamp {
        global: due.global,
        target: due.target,
        seq: due.seq,
        sent_ns,
    };
    let len = packet::build_echo_request(buf, auth, due.addr, &stamp, due.payload);
    core.counters_mut().send_calls += 1;
    match sock.send_to(&buf[..len], due.addr, due.global as u32) {
        Ok(()) => core.sent(due, sent_ns, now),
        Err(e) if batch::queue_full(&e) => return None,
        Err(e) => {
            tracing::debug!(target_ip = %due.addr, error = %e, "send failed");
            core.send_failed(due, now, send_error(&e));
        }
    }
    Some(1)
}

/// Sends `first` and the due probes right after it of the same family in one batch; the probes
/// handled, or `None` when the send queue was full before the whole batch was handled (the rest
/// is sent on the next round).
fn send_batch(
    sock: &IcmpSocket,
    batch: &mut SendBatch,
    dues: &mut Vec<Due>,
    auth: &Authenticator,
    core: &mut Core,
    first: Due,
    now: u64,
) -> Option<usize> {
    batch.clear();
    dues.clear();
    // One user-space stamp for the batch: a lower bound of every packet's send time, which the
    // kernel TX stamps are checked against; the RTTs come from those stamps.
    let batch_ns = realtime_ns();
    let family = first.addr.is_ipv4();
    let mut next = Some(first);
    while let Some(due) = next {
        if due.addr.is_ipv4() != family || due.payload > batch::MAX_BATCHED_PAYLOAD {
            break;
        }
        let stamp = ProbeStamp {
            global: due.global,
            target: due.target,
            seq: due.seq,
            sent_ns: batch_ns,
        };
        if !batch.push(due.addr, due.global as u32, |buf| {
            packet::build_echo_request(buf, auth, due.addr, &stamp, due.payload)
        }) {
            break;
        }
        dues.push(due);
        next = core.peek_due(now, dues.len() as u64);
    }
    let mut calls = 0;
    let end = batch::send_each(
        dues.len(),
        |from| {
            calls += 1;
            sock.send_batch(batch, from)
        },
        |i, result| match result {
            Ok(()) => core.sent_in_batch(dues[i], batch_ns, now),
            Err(e) => {
                tracing::debug!(target_ip = %dues[i].addr, error = %e, "send failed");
                core.send_failed(dues[i], now, send_error(&e));
            }
        },
    );
    core.counters_mut().send_calls += calls;
    match end {
        BatchEnd::Done => Some(dues.len()),
        BatchEnd::QueueFull(_) => None,
    }
}

/// Resolves when `sock` has something to read; never for no socket (or a broken one).
pub(super) async fn readable(sock: Option<&IcmpSocket>) {
    match sock {
        Some(s) => {
            if s.readable().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
