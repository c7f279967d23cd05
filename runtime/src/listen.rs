//! Listening on "every interface" means both address families: Kubernetes probes and Services
//! reach a pod on its IPv6 address in IPv6-only and dual-stack clusters, and on its IPv4 address
//! elsewhere. One dual-stack socket on `[::]` serves both (IPv4 peers arrive as IPv4-mapped
//! addresses); where the kernel has no IPv6 at all, the same port on `0.0.0.0` is used instead.
//! Every binary's TCP listener goes through here, so they all behave alike.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Parses `HOST:PORT`, `[V6]:PORT`, or `:PORT` for every interface of both families (`[::]:PORT`),
/// for clap's `value_parser`.
///
/// # Errors
/// A message naming the input and the accepted forms.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("[::]{s}")
    } else {
        s.to_string()
    };
    full.parse().map_err(|_| {
        format!(
            "{:?} is not a listen address (HOST:PORT, [V6]:PORT or :PORT)",
            s.chars().take(64).collect::<String>()
        )
    })
}

/// Binds `addr` for TCP. `[::]` is dual-stack; if the kernel has no IPv6, `[::]:PORT` falls back
/// to `0.0.0.0:PORT` (and says so in the log). Must be called inside a Tokio runtime.
///
/// # Errors
/// The bind error (address in use, permission denied, no such address).
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    match bind_once(addr) {
        Err(e) if addr.ip() == Ipv6Addr::UNSPECIFIED && no_ipv6(&e) => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::info!(%addr, fallback = %v4, error = %e, "no IPv6 here; listening on IPv4 only");
            bind_once(v4)
        }
        other => other,
    }
}

fn bind_once(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.ip() == Ipv6Addr::UNSPECIFIED {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Errors that mean "this kernel or namespace has no IPv6", as opposed to a real bind failure.
fn no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_codes::EAFNOSUPPORT | libc_codes::EADDRNOTAVAIL | libc_codes::EPROTONOSUPPORT)
    )
}

/// The three errno values above (Linux numbering); spelled out to keep this crate free of `libc`.
mod libc_codes {
    pub(super) const EPROTONOSUPPORT: i32 = 93;
    pub(super) const EAFNOSUPPORT: i32 = 97;
    pub(super) const EADDRNOTAVAIL: i32 = 99;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    #[test]
    fn listen_forms() {
        assert_eq!(
            parse_listen(":7071"),
            Ok("[::]:7071".parse().expect("addr"))
        );
        assert_eq!(
            parse_listen("127.0.0.1:0"),
            Ok("127.0.0.1:0".parse().expect("addr"))
        );
        assert_eq!(
            parse_listen("[::1]:80"),
            Ok("[::1]:80".parse().expect("addr"))
        );
        assert_eq!(
            parse_listen("localhost"),
            Err("\"localhost\" is not a listen address (HOST:PORT, [V6]:PORT or :PORT)".into())
        );
    }

    async fn echo(listener: &TcpListener) {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.expect("read");
        s.write_all(&b).await.expect("write");
    }

    async fn round_trip(to: SocketAddr) {
        let mut c = TcpStream::connect(to).await.expect("connect");
        c.write_all(b"x").await.expect("write");
        let mut b = [0u8; 1];
        c.read_exact(&mut b).await.expect("read");
        assert_eq!(&b, b"x");
    }

    /// One `[::]` listener answers on both loopbacks (IPv4 only where the kernel has no IPv6).
    #[tokio::test]
    async fn every_interface_is_both_families() {
        let listener = bind_tcp("[::]:0".parse().expect("addr")).expect("bind");
        let local = listener.local_addr().expect("addr");
        let dual = local.is_ipv6();
        let server = tokio::spawn(async move {
            echo(&listener).await;
            if dual {
                echo(&listener).await;
            }
        });
        round_trip(SocketAddr::from((Ipv4Addr::LOCALHOST, local.port()))).await;
        if dual {
            round_trip(SocketAddr::from((Ipv6Addr::LOCALHOST, local.port()))).await;
        }
        server.await.expect("server");
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_not_a_fallback() {
        let first = bind_tcp("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let taken = first.local_addr().expect("addr");
        let err = bind_tcp(taken).expect_err("in use");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
