//! Plain TCP peers that send nothing or garbage, to see what a port does with them.
//!
//! A server must close such connections (after its idle timeout, or at once on bytes that are
//! not its protocol) and keep serving everyone else; tests of both ports wait for the close the
//! same way.

use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// Reads and drops whatever arrives on `sock` until the peer closes it (or it fails); `true`
/// when that happened within `wait`.
pub async fn closed_within(sock: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(wait, async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}
