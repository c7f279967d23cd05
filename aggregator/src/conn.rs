//! Limits on connections, below the protocols: how many may be open per port, how long one may
//! stay silent, and how often HTTP/2 checks that the peer is still there.
//!
//! Why: a connection costs memory before it says anything (socket buffers, an HTTP/2 state
//! machine), and one that never speaks, or a peer that vanished without a FIN (a node that lost
//! power, a blackholed path), was kept forever. So each port takes at most `--max-connections`
//! (the next ones are closed at once, counted); a connection from which nothing was read for
//! `--idle-timeout` is closed (HTTP/2 peers answer the keepalive pings below, so a live agent or
//! `watch` is never idle); and gRPC pings every [`KEEPALIVE_INTERVAL`], closing the connection when
//! no answer comes within [`KEEPALIVE_TIMEOUT`]: a dead agent is noticed within 20 s.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How often the aggregator pings an HTTP/2 peer.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection is closed.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most concurrent streams on one HTTP/2 connection (an agent uses one, a CLI a few).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;

/// A gRPC server with keepalive and the per-connection stream limit.
#[must_use]
pub fn grpc_server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
}

/// One port's connection limit and what it refused (cheap to clone).
#[derive(Debug, Clone)]
pub struct ConnLimit {
    slots: Arc<Semaphore>,
    idle: Duration,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    refused: AtomicU64,
    idle_closed: AtomicU64,
}

impl ConnLimit {
    /// At most `max` open connections, each closed after `idle` without a byte read.
    #[must_use]
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
            idle,
            counts: Arc::default(),
        }
    }

    /// Connections closed at once because the port was full.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.counts.refused.load(Ordering::Relaxed)
    }

    /// Connections closed because nothing was read for the idle timeout.
    #[must_use]
    pub fn idle_closed(&self) -> u64 {
        self.counts.idle_closed.load(Ordering::Relaxed)
    }

    /// `io` with a slot, or `None` (and `io` dropped, so closed) when the port is full.
    pub fn admit<T>(&self, io: T) -> Option<Guarded<T>> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            let n = self.counts.refused.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    refused = n + 1,
                    "connection refused: --max-connections reached"
                );
            }
            return None;
        };
        Some(Guarded {
            io,
            _slot: slot,
            idle: self.idle,
            deadline: Box::pin(tokio::time::sleep(self.idle)),
            counts: self.counts.clone(),
        })
    }

    /// An incoming stream of connections, limited.
    pub fn incoming<T, E, S>(self, incoming: S) -> impl Stream<Item = Result<Guarded<T>, E>>
    where
        S: Stream<Item = Result<T, E>>,
    {
        let limit = self;
        incoming.filter_map(move |r| {
            let out = match r {
                Ok(io) => limit.admit(io).map(Ok),
                Err(e) => Some(Err(e)),
            };
            std::future::ready(out)
        })
    }

    /// A TCP listener for axum, limited.
    #[must_use]
    pub fn listener(&self, l: tokio::net::TcpListener) -> LimitedListener {
        LimitedListener {
            inner: l,
            limit: self.clone(),
        }
    }
}

/// The connection counters of both ports on `/metrics`:
/// `echomesh_connections_closed_total{port="grpc|http", reason="limit|idle"}`.
#[derive(Debug, Clone)]
pub struct ConnCollector {
    /// The gRPC port's limit (TCP, TLS and the unix socket).
    pub grpc: ConnLimit,
    /// The HTTP port's limit.
    pub http: ConnLimit,
}

impl prometheus_client::collector::Collector for ConnCollector {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric as _;
        let mut m = enc.encode_descriptor(
            "echomesh_connections_closed",
            "Connections the aggregator closed: reason=limit (the port held --max-connections), idle (nothing read for --idle-timeout).",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (port, l) in [("grpc", &self.grpc), ("http", &self.http)] {
            for (reason, n) in [("limit", l.refused()), ("idle", l.idle_closed())] {
                prometheus_client::metrics::counter::ConstCounter::new(n)
                    .encode(m.encode_family(&[("port", port), ("reason", reason)])?)?;
            }
        }
        Ok(())
    }
}

/// A connection holding one of its port's slots, closed when idle.
#[derive(Debug)]
pub struct Guarded<T> {
    io: T,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    counts: Arc<Counts>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + this.idle;
                    this.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.counts.idle_closed.fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("nothing read for {:?}: closed as idle", this.idle),
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Guarded<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// A TCP listener whose connections are [`Guarded`] (for `axum::serve`).
#[derive(Debug)]
pub struct LimitedListener {
    inner: tokio::net::TcpListener,
    limit: ConnLimit,
}

impl axum::serve::Listener for LimitedListener {
    type Io = Guarded<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            if let Some(g) = self.limit.admit(io) {
                return (g, addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test(start_paused = true)]
    async fn a_full_port_refuses_and_a_silent_connection_is_closed() {
        let limit = ConnLimit::new(1, Duration::from_secs(30));
        let (a, mut peer) = tokio::io::duplex(64);
        let mut g = limit.admit(a).expect("first slot");
        let (b, _peer_b) = tokio::io::duplex(64);
        assert!(limit.admit(b).is_none(), "the port is full");
        assert_eq!(limit.refused(), 1);

        // Bytes keep it open; silence closes it.
        tokio::time::sleep(Duration::from_secs(20)).await;
        peer.write_all(b"hi").await.expect("write");
        let mut buf = [0u8; 2];
        g.read_exact(&mut buf).await.expect("read");
        tokio::time::sleep(Duration::from_secs(20)).await;
        let start = Instant::now();
        let e = g.read(&mut buf).await.expect_err("idle");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(10),
            "30 s after the last byte"
        );
        assert_eq!(limit.idle_closed(), 1);

        drop(g);
        let (c, _peer_c) = tokio::io::duplex(64);
        assert!(
            limit.admit(c).is_some(),
            "a closed connection frees its slot"
        );
    }
}
