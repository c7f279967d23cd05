//! Many echo requests in one `sendmmsg`, each with its own kernel TX timestamp key.
//!
//! Why batches: the engine wakes once per tick and finds tens of probes due; one syscall for all
//! of them saves, per probe, the syscall entry, the descriptor lookup and the copy of the message
//! header, and keeps the loop's own work between two packets small.
//!
//! Why the RTTs stay exact: every message of a batch carries its own `SCM_TS_OPT_ID` control
//! message (the low 32 bits of its probe number), so the kernel's software TX timestamp of each
//! packet, taken when the driver hands *that* packet to the device, comes back on the error queue
//! under that packet's own key, exactly as for a single `sendmsg`. The user-space stamp, read once
//! before the batch, is only the lower bound a kernel stamp is checked against; the engine gives a
//! batched probe whose kernel stamp never arrives no RTT sample rather than one inflated by the
//! packets ahead of it in the batch. Batches are therefore only used once the kernel has accepted a
//! keyed send (`IcmpSocket::batches`); without kernel stamps every probe is its own `sendmsg`
//! with its own user-space stamp.
//!
//! Partial sends: `sendmmsg` returns how many messages the kernel took. An error on the first
//! message of a call is the call's error; an error on a later one is not reported at all, the call
//! just returns fewer. [`send_each`] therefore calls again from the first message not taken, so
//! every message ends with its own result: sent, failed with its own errno (a send error of that
//! probe only), or not attempted because the send queue is full (retried on the next round under
//! the same probe number).
#![allow(unsafe_code)]

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{IpAddr, SocketAddr};

use socket2::SockAddr;

/// Most messages per `sendmmsg` call (the kernel's own limit, `UIO_MAXIOV`, is 1024).
pub const SEND_BATCH: usize = 64;
/// Packet bytes a batch may hold; very large payloads make smaller batches.
const BATCH_BYTES: usize = 1 << 20;
/// `SCM_TS_OPT_ID` (Linux 6.13+): sets the timestamp key of one message.
const SCM_TS_OPT_ID: libc::c_int = 81;

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEnd {
    /// Every message was sent or failed on its own.
    Done,
    /// The send queue was full at message `n`: it and the messages after it were not attempted.
    QueueFull(usize),
}

/// True for the errors that mean "the queue is full, try again later" rather than "this packet
/// cannot be sent".
#[must_use]
pub fn queue_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(libc::ENOBUFS)
}

/// Payload bytes a batched probe may carry at most: 576-byte IPv4 packets (the smallest MTU a
/// path may have) never meet `EMSGSIZE`. A larger probe goes out alone, so a too-big refusal comes
/// back with its errno instead of as an unreported failure (see [`send_each`]).
pub const MAX_BATCHED_PAYLOAD: usize = 576 - 20 - 8;

/// The error of a message `sendmmsg` stopped at: the kernel returns how many it sent and drops
/// the error of the next one, so its cause is unknown.
#[must_use]
pub fn unreported() -> io::Error {
    io::Error::other("refused within a sendmmsg batch (the kernel reports only how many it sent)")
}

/// Sends messages `0..len` through `call(from)` (one `sendmmsg` of messages `from..len`, returning
/// how many the kernel took) and reports each message's own result to `result`, in order.
///
/// A short count means the kernel refused the message after the last one it took and dropped
/// the error: that message fails as [`unreported`] and is not sent again. Sending it again would
/// hide a random drop on the way out (a firewall's sampled drop, a full conntrack table): the
/// second try may pass and the probe would count as answered although its first packet was lost.
/// A message that fails first in its call has its own errno.
pub fn send_each(
    len: usize,
    mut call: impl FnMut(usize) -> io::Result<usize>,
    mut result: impl FnMut(usize, io::Result<()>),
) -> BatchEnd {
    let mut i = 0;
    while i < len {
        match call(i) {
            // Nothing taken and no error: no progress is possible now.
            Ok(0) => return BatchEnd::QueueFull(i),
            Ok(n) => {
                let end = i.saturating_add(n).min(len);
                for k in i..end {
                    result(k, Ok(()));
                }
                i = end;
                if i < len {
                    result(i, Err(unreported()));
                    i += 1;
                }
            }
            Err(e) if queue_full(&e) => return BatchEnd::QueueFull(i),
            Err(e) => {
                // The error belongs to the first message of the call, and to it alone.
                result(i, Err(e));
                i += 1;
            }
        }
    }
    BatchEnd::Done
}

/// The packets of one batch, their destinations and keys; buffers are reused from batch to batch.
pub struct SendBatch {
    slot_len: usize,
    capacity: usize,
    bufs: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<SockAddr>,
    keys: Vec<u32>,
    // u64 elements keep the control buffers aligned for `cmsghdr`.
    controls: Vec<[u64; 4]>,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("slot_len", &self.slot_len)
            .field("capacity", &self.capacity)
            .field("len", &self.lens.len())
            .finish_non_exhaustive()
    }
}

impl SendBatch {
    /// Room for up to [`SEND_BATCH`] packets of at most `max_packet` bytes each.
    #[must_use]
    pub fn new(max_packet: usize) -> Self {
        let slot_len = max_packet.max(1);
        let capacity = (BATCH_BYTES / slot_len).clamp(1, SEND_BATCH);
        Self {
            slot_len,
            capacity,
            bufs: vec![0u8; slot_len * capacity],
            lens: Vec::with_capacity(capacity),
            addrs: Vec::with_capacity(capacity),
            keys: Vec::with_capacity(capacity),
            controls: vec![[0u64; 4]; capacity],
        }
    }

    /// The largest packet a slot holds.
    #[must_use]
    pub fn max_packet(&self) -> usize {
        self.slot_len
    }

    /// Packets in the batch.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// True when the batch holds no packet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// True when no further packet fits.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.lens.len() >= self.capacity
    }

    /// Empties the batch (the buffers stay allocated).
    pub fn clear(&mut self) {
        self.lens.clear();
        self.addrs.clear();
        self.keys.clear();
    }

    /// Adds a packet to `dst`, TX-stamped under `key`: `build` writes it into its slot (of
    /// [`SendBatch::max_packet`] bytes) and returns its length. False when the batch is full.
    pub fn push(&mut self, dst: IpAddr, key: u32, build: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let i = self.lens.len();
        if i >= self.capacity {
            return false;
        }
        let slot = &mut self.bufs[i * self.slot_len..(i + 1) * self.slot_len];
        let len = build(slot).min(self.slot_len);
        self.lens.push(len);
        self.addrs.push(SockAddr::from(SocketAddr::new(dst, 0)));
        self.keys.push(key);
        true
    }

    /// The `i`-th packet's bytes.
    #[must_use]
    pub fn packet(&self, i: usize) -> &[u8] {
        &self.bufs[i * self.slot_len..i * self.slot_len + self.lens[i]]
    }

    /// One non-blocking `sendmmsg` of messages `from..` on `fd`, each keyed for its TX timestamp;
    /// returns how many the kernel took.
    pub(super) fn sendmmsg(&mut self, fd: libc::c_int, from: usize) -> io::Result<usize> {
        let end = self.lens.len();
        if from >= end {
            return Ok(0);
        }
        let count = end - from;
        // The control messages first, through `&mut self.controls`; below only raw pointers to
        // them are taken.
        for i in from..end {
            write_key_cmsg(&mut self.controls[i], self.keys[i]);
        }
        let mut iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; SEND_BATCH];
        for (k, i) in (from..end).enumerate() {
            iovecs[k] = libc::iovec {
                iov_base: self.bufs[i * self.slot_len..].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
        }
        // SAFETY: mmsghdr is plain old data; zero is a valid empty header, filled in below.
        let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { MaybeUninit::zeroed().assume_init() };
        for (k, i) in (from..end).enumerate() {
            let h = &mut hdrs[k].msg_hdr;
            h.msg_name = self.addrs[i].as_ptr().cast_mut().cast();
            h.msg_namelen = self.addrs[i].len();
            h.msg_iov = &raw mut iovecs[k];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = key_cmsg_space();
        }
        // SAFETY: `count` <= SEND_BATCH headers are initialised; each points at a name, an iovec
        // (pointing into `self.bufs` with its packet's length) and a control buffer of
        // `key_cmsg_space()` bytes, all owned by `self` or this frame and alive, unmoved, for the
        // duration of the call; the kernel only reads them (and writes `msg_len` into `hdrs`).
        // `fd` is an open socket owned by the caller; MSG_DONTWAIT keeps the call non-blocking.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                hdrs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// Bytes of the one control message a keyed send carries.
fn key_cmsg_space() -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE(size_of::<u32>() as u32) as usize }
}

/// Writes an `SOL_SOCKET / SCM_TS_OPT_ID = key` control message at the start of `control`.
fn write_key_cmsg(control: &mut [u64; 4], key: u32) {
    // SAFETY: msghdr is plain old data; zero is a valid empty header. Only msg_control and
    // msg_controllen are set, so CMSG_FIRSTHDR returns the start of `control`.
    let mut h: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    h.msg_control = control.as_mut_ptr().cast();
    h.msg_controllen = key_cmsg_space();
    // SAFETY: `control` (32 bytes, u64-aligned) holds CMSG_SPACE(4) = 24 bytes, so the header and
    // its 4 data bytes lie inside it; `h` points at `control`, which is borrowed mutably here.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&h);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = SCM_TS_OPT_ID;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<u32>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u32>(), key);
    }
}

#[cfg(test)]
mod tests;
