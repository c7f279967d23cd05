//! The raw ICMP socket: the one place echomesh talks to the kernel below the standard library.
//!
//! Why raw sockets and not ping (`SOCK_DGRAM`) sockets: we need our own identifier for the kernel
//! filter, ICMP errors quoting our requests, and DF control for MTU probing. Why `recvmmsg`: at
//! 100k replies/s one syscall per reply would cost more than the probing itself. Why kernel receive
//! timestamps (`SO_TIMESTAMPNS`): the reply's arrival is stamped when the kernel receives it, not
//! when a busy user-space loop gets round to reading it, so scheduling noise on the node does not
//! show up as network latency.
//!
//! Send times come from the kernel too when it can: `SO_TIMESTAMPING` software TX timestamps
//! (taken when the driver hands the packet to the device), reported on the error queue without the
//! packet and keyed per send with `SCM_TS_OPT_ID` (Linux 6.13+), so the RTT is wire-to-wire and
//! excludes our own syscall and stack time. Each packet also carries a user-space stamp taken
//! immediately before its send, used when no kernel stamp arrives (older kernels, drivers that do
//! not stamp). Once the kernel has accepted a keyed send, due probes go out in `sendmmsg` batches
//! ([`super::batch`]), each packet still keyed for its own kernel stamp; without kernel stamps
//! every packet is its own `sendmsg`, since a batch under one user-space stamp would inflate RTTs
//! by the time the kernel spends on the packets ahead of each one (on veth it even answers them
//! inside the same syscall).
#![allow(unsafe_code)]

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::batch::SendBatch;
use super::bpf;

/// Which IP family a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 / ICMP.
    V4,
    /// IPv6 / ICMPv6.
    V6,
}

impl Family {
    /// The family of an address.
    #[must_use]
    pub fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// Why a socket could not be opened or configured.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The process may not open raw sockets.
    #[error(
        "raw ICMP sockets need the CAP_NET_RAW capability: run as root, or grant it with \
         `setcap cap_net_raw+ep <path to echomesh-agent>` (in Kubernetes: securityContext.capabilities.add: [NET_RAW])"
    )]
    MissingCapability,
    /// Any other failure, with the step that failed.
    #[error("{step}: {source}")]
    Io {
        /// What we were doing.
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> SocketError {
    move |source| SocketError::Io { step, source }
}

/// Nanoseconds since the Unix epoch on CLOCK_REALTIME, the clock kernel receive timestamps use.
#[must_use]
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Messages read per `recvmmsg` call.
pub const RECV_BATCH: usize = 64;
/// Control-message space per message: a timespec and a drop counter, with headroom.
const CONTROL_LEN: usize = 128;

/// One received datagram, borrowed from the batch buffers.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The datagram (IPv4: from the IP header; IPv6: from the ICMPv6 header).
    pub data: &'a [u8],
    /// Source address.
    pub from: IpAddr,
    /// Kernel receive time, CLOCK_REALTIME ns; `None` if the kernel gave none.
    pub rx_ns: Option<u64>,
    /// The socket's cumulative receive-queue drop counter (`SO_RXQ_OVFL`), when reported.
    pub drops: Option<u32>,
}

/// Buffers for one `recvmmsg` batch, reused for every call.
struct RecvBatch {
    buf_len: usize,
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    // u64 elements keep the control buffers aligned for `cmsghdr`.
    controls: Vec<[u64; CONTROL_LEN / 8]>,
    iovecs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    filled: usize,
}

// SAFETY: the raw pointers in `iovecs` and `hdrs` only ever point into buffers owned by the same
// `RecvBatch`, are rebuilt before every `recvmmsg`, and are never dereferenced by us otherwise; moving
// the batch to another thread moves those buffers with it.
unsafe impl Send for RecvBatch {}
// SAFETY: through `&RecvBatch` the pointers are only read (by `get`, to walk control messages within
// our own buffers); all writes, by us or the kernel, need `&mut RecvBatch`.
unsafe impl Sync for RecvBatch {}

impl RecvBatch {
    fn new(buf_len: usize) -> Self {
        Self {
            buf_len,
            bufs: vec![0u8; buf_len * RECV_BATCH],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
            names: vec![unsafe { MaybeUninit::zeroed().assume_init() }; RECV_BATCH],
            controls: vec![[0u64; CONTROL_LEN / 8]; RECV_BATCH],
            iovecs: Vec::with_capacity(RECV_BATCH),
            hdrs: Vec::with_capacity(RECV_BATCH),
            filled: 0,
        }
    }

    /// One non-blocking `recvmmsg`; returns how many datagrams arrived.
    fn recv(&mut self, fd: libc::c_int, flags: libc::c_int) -> io::Result<usize> {
        // Rebuilt every call so no pointer outlives a move of the vectors it points into.
        self.iovecs.clear();
        self.hdrs.clear();
        for i in 0..RECV_BATCH {
            self.iovecs.push(libc::iovec {
                iov_base: self.bufs[i * self.buf_len..].as_mut_ptr().cast(),
                iov_len: self.buf_len,
            });
        }
        for i in 0..RECV_BATCH {
            // SAFETY: msghdr is plain old data; zero is a valid empty header, filled in below.
            let mut h: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = CONTROL_LEN;
            self.hdrs.push(libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            });
        }
        // SAFETY: every pointer in `hdrs` points into buffers owned by `self` that stay alive and
        // unmoved for the duration of the call; lengths match the buffers; `fd` is an open socket
        // owned by the caller. MSG_DONTWAIT keeps the call non-blocking.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT | flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.filled = 0;
            return Err(io::Error::last_os_error());
        }
        self.filled = n as usize;
        Ok(self.filled)
    }

    fn get(&self, i: usize) -> Option<Received<'_>> {
        if i >= self.filled {
            return None;
        }
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.buf_len);
        let data = &self.bufs[i * self.buf_len..i * self.buf_len + len];
        let from = sockaddr_ip(&self.names[i])?;
        let (rx_ns, drops) = control_messages(&h.msg_hdr);
        Some(Received {
            data,
            from,
            rx_ns,
            drops,
        })
    }
}

fn sockaddr_ip(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET); sockaddr_storage is larger
            // and suitably aligned for it.
            let sin = unsafe { &*(std::ptr::from_ref(ss).cast::<libc::sockaddr_in>()) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>()) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// Calls `f(level, type, payload)` for every control message of a msghdr filled by the kernel.
fn for_each_cmsg(h: &libc::msghdr, mut f: impl FnMut(libc::c_int, libc::c_int, &[u8])) {
    // SAFETY: `h` is a msghdr the kernel filled in by recvmmsg; msg_control/msg_controllen describe
    // our control buffer, the CMSG_* helpers only walk within msg_controllen, and each payload slice
    // is cut to the cmsg's own length, which the kernel kept inside that buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let len = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            let data = std::slice::from_raw_parts(libc::CMSG_DATA(c).cast_const(), len);
            f((*c).cmsg_level, (*c).cmsg_type, data);
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
}

/// A `struct timespec` at the start of `b` as nanoseconds (CLOCK_REALTIME), if it fits.
fn timespec_ns(b: &[u8]) -> Option<u64> {
    let sec = i64::from_ne_bytes(b.get(0..8)?.try_into().ok()?);
    let nsec = i64::from_ne_bytes(b.get(8..16)?.try_into().ok()?);
    Some((sec as u64).saturating_mul(1_000_000_000) + nsec as u64)
}

fn control_messages(h: &libc::msghdr) -> (Option<u64>, Option<u32>) {
    let (mut rx_ns, mut drops) = (None, None);
    for_each_cmsg(h, |level, kind, data| match (level, kind) {
        (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => rx_ns = timespec_ns(data),
        (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => {
            drops = data
                .get(0..4)
                .and_then(|d| d.try_into().ok())
                .map(u32::from_ne_bytes);
        }
        _ => {}
    });
    (rx_ns, drops)
}

/// `SO_TIMESTAMPING` (the 64-bit-time "old" value, as on every 64-bit Linux architecture).
const SO_TIMESTAMPING: libc::c_int = 37;
/// `SCM_TS_OPT_ID` (Linux 6.13+): sets the timestamp key of one `sendmsg`.
const SCM_TS_OPT_ID: libc::c_int = 81;
/// Kernel software TX timestamps, reported without the packet, keyed by an id we choose per send.
const TX_TIMESTAMPING: libc::c_int = (libc::SOF_TIMESTAMPING_TX_SOFTWARE
    | libc::SOF_TIMESTAMPING_SOFTWARE
    | libc::SOF_TIMESTAMPING_OPT_ID
    | libc::SOF_TIMESTAMPING_OPT_TSONLY) as libc::c_int;
/// `ee_info` of a timestamp taken when the driver hands the packet to the device.
const SCM_TSTAMP_SND: u32 = 0;

/// The (key, CLOCK_REALTIME ns) of a TX timestamp message from the error queue.
fn tx_stamp(h: &libc::msghdr) -> Option<(u32, u64)> {
    let (mut ts, mut key) = (None, None);
    for_each_cmsg(h, |level, kind, data| {
        if level == libc::SOL_SOCKET && kind == SO_TIMESTAMPING {
            // struct scm_timestamping { struct timespec ts[3]; }: [0] is the software stamp.
            ts = timespec_ns(data);
        } else if (level == libc::SOL_IP && kind == libc::IP_RECVERR)
            || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR)
        {
            // struct sock_extended_err: errno u32, origin u8, type u8, code u8, pad u8, info u32,
            // data u32.
            let origin = data.get(4).copied();
            let info = data
                .get(8..12)
                .and_then(|d| d.try_into().ok())
                .map(u32::from_ne_bytes);
            let ee_data = data
                .get(12..16)
                .and_then(|d| d.try_into().ok())
                .map(u32::from_ne_bytes);
            if origin == Some(libc::SO_EE_ORIGIN_TIMESTAMPING) && info == Some(SCM_TSTAMP_SND) {
                key = ee_data;
            }
        }
    });
    Some((key?, ts.filter(|&t| t > 0)?))
}

fn set_int(
    sock: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a plain setsockopt with a c_int value and its exact size on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Configuration of one socket.
#[derive(Debug, Clone, Copy)]
pub struct SocketOptions {
    /// Receive buffer to ask for, bytes (forced past `rmem_max` when CAP_NET_ADMIN allows).
    pub recv_buffer: usize,
    /// Send buffer to ask for, bytes.
    pub send_buffer: usize,
    /// Largest datagram we expect to receive (payload + headers).
    pub max_datagram: usize,
}

/// The socket's descriptor as the runtime's reactor sees it; the `Socket` itself stays with
/// [`IcmpSocket`].
struct ReactorFd(libc::c_int);

impl AsRawFd for ReactorFd {
    fn as_raw_fd(&self) -> libc::c_int {
        self.0
    }
}

/// A non-blocking raw ICMP socket with our BPF filter and kernel receive timestamps.
///
/// It joins the runtime's reactor (epoll) only when something first waits for it
/// ([`IcmpSocket::readable`]): a registered socket makes the kernel run the epoll callback for
/// every reply and every TX timestamp it queues, a cost per packet that the engine, which reads on
/// its own schedule while probes are being sent, has no use for.
pub struct IcmpSocket {
    // Declared before `fd`, so it leaves the reactor before the descriptor is closed.
    reactor: OnceLock<AsyncFd<ReactorFd>>,
    family: Family,
    fd: Socket,
    batch: RecvBatch,
    errors: RecvBatch,
    recv_buffer: usize,
    /// Kernel TX timestamps are on (set at open, cleared if the kernel refuses keyed sends).
    tx_stamps: AtomicBool,
    /// A keyed send has succeeded, so a later EINVAL is about the packet, not the feature.
    tx_confirmed: AtomicBool,
}

impl std::fmt::Debug for IcmpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IcmpSocket")
            .field("family", &self.family)
            .field("fd", &self.fd.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl IcmpSocket {
    /// Opens and configures a socket.
    pub fn open(family: Family, ident: u16, opts: SocketOptions) -> Result<Self, SocketError> {
        let (domain, proto) = match family {
            Family::V4 => (Domain::IPV4, Protocol::ICMPV4),
            Family::V6 => (Domain::IPV6, Protocol::ICMPV6),
        };
        let sock = Socket::new(domain, Type::RAW, Some(proto)).map_err(|e| {
            if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                SocketError::MissingCapability
            } else {
                SocketError::Io {
                    step: "opening raw ICMP socket",
                    source: e,
                }
            }
        })?;
        sock.set_nonblocking(true)
            .map_err(step("setting O_NONBLOCK"))?;
        let filter: Vec<SockFilter> = match family {
            Family::V4 => bpf::ipv4(ident),
            Family::V6 => bpf::ipv6(ident),
        }
        .into_iter()
        .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect();
        sock.attach_filter(&filter)
            .map_err(step("attaching BPF filter"))?;
        set_int(&sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
            .map_err(step("enabling SO_TIMESTAMPNS"))?;
        set_int(&sock, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)
            .map_err(step("enabling SO_RXQ_OVFL"))?;
        // DF on, path-MTU cache ignored: large probes must hit the real path MTU (and black holes).
        match family {
            Family::V4 => set_int(
                &sock,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_PROBE,
            ),
            Family::V6 => set_int(
                &sock,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_PROBE,
            )
            .and_then(|()| set_int(&sock, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 1)),
        }
        .map_err(step("setting don't-fragment"))?;
        let clamp = |v: usize| libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
        // FORCE variants need CAP_NET_ADMIN; without it fall back to the rmem_max/wmem_max cap.
        if set_int(
            &sock,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            clamp(opts.recv_buffer),
        )
        .is_err()
        {
            sock.set_recv_buffer_size(opts.recv_buffer)
                .map_err(step("setting SO_RCVBUF"))?;
        }
        if set_int(
            &sock,
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            clamp(opts.send_buffer),
        )
        .is_err()
        {
            sock.set_send_buffer_size(opts.send_buffer)
                .map_err(step("setting SO_SNDBUF"))?;
        }
        let recv_buffer = sock.recv_buffer_size().unwrap_or(0);
        // Best effort: without TX timestamps, send times are the user-space stamps.
        let tx_stamps = set_int(&sock, libc::SOL_SOCKET, SO_TIMESTAMPING, TX_TIMESTAMPING).is_ok();
        Ok(Self {
            reactor: OnceLock::new(),
            family,
            fd: sock,
            batch: RecvBatch::new(opts.max_datagram.max(576)),
            errors: RecvBatch::new(64),
            recv_buffer,
            tx_stamps: AtomicBool::new(tx_stamps),
            tx_confirmed: AtomicBool::new(false),
        })
    }

    /// The socket's family.
    #[must_use]
    pub fn family(&self) -> Family {
        self.family
    }

    /// The receive buffer the kernel granted (bytes, as reported by SO_RCVBUF).
    #[must_use]
    pub fn recv_buffer(&self) -> usize {
        self.recv_buffer
    }

    /// Sends one packet now; `WouldBlock` when the send buffer is full.
    ///
    /// With kernel TX timestamps on, the packet is sent with `SCM_TS_OPT_ID = key`, and its
    /// timestamp later comes back from [`IcmpSocket::recv_tx_stamps`] under that key. Kernels
    /// before 6.13 refuse the key with EINVAL on the first send; timestamps are then switched off
    /// and the packet is sent plainly.
    pub fn send_to(&self, packet: &[u8], dst: IpAddr, key: u32) -> io::Result<()> {
        let addr = SockAddr::from(SocketAddr::new(dst, 0));
        if self.tx_stamps.load(Ordering::Relaxed) {
            match self.send_keyed(packet, &addr, key) {
                Err(e)
                    if e.raw_os_error() == Some(libc::EINVAL)
                        && !self.tx_confirmed.load(Ordering::Relaxed) =>
                {
                    tracing::info!(
                        "kernel refuses per-packet timestamp keys (needs Linux 6.13+): using user-space send stamps"
                    );
                    self.tx_stamps.store(false, Ordering::Relaxed);
                    let _ = set_int(&self.fd, libc::SOL_SOCKET, SO_TIMESTAMPING, 0);
                }
                Ok(()) => {
                    self.tx_confirmed.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        self.fd.send_to(packet, &addr).map(|_| ())
    }

    fn send_keyed(&self, packet: &[u8], addr: &SockAddr, key: u32) -> io::Result<()> {
        let mut iov = libc::iovec {
            iov_base: packet.as_ptr().cast_mut().cast(),
            iov_len: packet.len(),
        };
        let mut control = [0u64; 4];
        // SAFETY: msghdr is plain old data; zero is a valid empty header, filled in below.
        let mut h: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        h.msg_name = addr.as_ptr().cast_mut().cast();
        h.msg_namelen = addr.len();
        h.msg_iov = &raw mut iov;
        h.msg_iovlen = 1;
        h.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        h.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u32>() as u32) } as usize;
        // SAFETY: `control` (32 bytes, u64-aligned) holds CMSG_SPACE(4) = 24 bytes, so the first
        // header and its 4 data bytes are inside it; `iov` and `addr` outlive the sendmsg call, which
        // only reads them (the kernel does not write through a send msghdr).
        let rc = unsafe {
            let c = libc::CMSG_FIRSTHDR(&h);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = SCM_TS_OPT_ID;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<u32>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u32>(), key);
            libc::sendmsg(self.fd.as_raw_fd(), &h, 0)
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// True when sends may be batched ([`IcmpSocket::send_batch`]): kernel TX timestamps are on
    /// and the kernel has accepted a keyed send, so every packet of a batch gets its own stamp.
    #[must_use]
    pub fn batches(&self) -> bool {
        self.tx_stamps.load(Ordering::Relaxed) && self.tx_confirmed.load(Ordering::Relaxed)
    }

    /// One `sendmmsg` of the batch's packets `from..`, each keyed for its own TX timestamp;
    /// returns how many the kernel took (see [`super::batch::send_each`] for partial sends).
    /// Only for a socket that [`IcmpSocket::batches`].
    pub fn send_batch(&self, batch: &mut SendBatch, from: usize) -> io::Result<usize> {
        batch.sendmmsg(self.fd.as_raw_fd(), from)
    }

    /// Reads the kernel TX timestamps queued since the last call, as `(key, CLOCK_REALTIME ns)`.
    pub fn recv_tx_stamps(&mut self, mut f: impl FnMut(u32, u64)) -> io::Result<()> {
        if !self.tx_stamps.load(Ordering::Relaxed) {
            return Ok(());
        }
        let fd = self.fd.as_raw_fd();
        loop {
            let n = match self.errors.recv(fd, libc::MSG_ERRQUEUE) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            for i in 0..n {
                if let Some((key, ns)) = tx_stamp(&self.errors.hdrs[i].msg_hdr) {
                    f(key, ns);
                }
            }
            if n < RECV_BATCH {
                return Ok(());
            }
        }
    }

    /// True while kernel TX timestamps are in use.
    #[must_use]
    pub fn tx_stamps(&self) -> bool {
        self.tx_stamps.load(Ordering::Relaxed)
    }

    /// Reads one batch without blocking; `Ok(0)`/`WouldBlock` when nothing is queued.
    ///
    /// Once the socket is in the reactor, a `WouldBlock` clears the runtime's readiness so
    /// [`IcmpSocket::readable`] waits again.
    pub fn recv_batch(&mut self) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        let batch = &mut self.batch;
        match self.reactor.get() {
            Some(r) => r.try_io(Interest::READABLE, |_| batch.recv(fd, 0)),
            None => batch.recv(fd, 0),
        }
    }

    /// The `i`-th datagram of the last batch.
    #[must_use]
    pub fn received(&self, i: usize) -> Option<Received<'_>> {
        self.batch.get(i)
    }

    /// Waits until the socket may have data; the first call puts the socket in the runtime's
    /// reactor (so it must be made inside a tokio runtime).
    pub async fn readable(&self) -> io::Result<()> {
        let reactor = match self.reactor.get() {
            Some(r) => r,
            None => {
                let fd = ReactorFd(self.fd.as_raw_fd());
                // SAFETY: the descriptor is `self.fd`'s, which stays open and unchanged while the
                // `AsyncFd` exists: `reactor` is declared before `fd` in `IcmpSocket`, so it is
                // dropped (deregistered) before the socket is closed, and `fd` is never replaced.
                let r = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                    .map_err(|e| e.into_parts().1)?;
                self.reactor.get_or_init(|| r)
            }
        };
        let mut g = reactor.readable().await?;
        // Readiness is cleared by `recv_batch` hitting WouldBlock, not here.
        g.retain_ready();
        Ok(())
    }
}
