//! Real gRPC over in-memory streams: every client connection is one `tokio::io::duplex` pair whose
//! server half goes to a tonic server the test builds (`serve_with_incoming`).
//!
//! Why not sockets: with no kernel I/O the whole conversation (HTTP/2, gRPC framing, flow control)
//! runs inside the test's runtime, so paused time governs every timer on both sides and a timeout
//! is measured exactly instead of raced against the wall clock. A [`Dialer`] can also be switched
//! "down" to refuse connections, which is how reconnect loops are tested.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Bytes buffered in each direction of one in-memory connection.
const PIPE_BYTES: usize = 64 * 1024;

/// What a tonic server takes as its connections (`Server::serve_with_incoming`).
pub type Incoming = UnboundedReceiverStream<io::Result<DuplexStream>>;

/// Opens in-memory connections to the server that holds the matching [`Incoming`].
#[derive(Debug, Clone)]
pub struct Dialer {
    incoming: mpsc::UnboundedSender<io::Result<DuplexStream>>,
    down: Arc<AtomicBool>,
}

/// A dialer and the connection stream to serve.
#[must_use]
pub fn pair() -> (Dialer, Incoming) {
    let (incoming, rx) = mpsc::unbounded_channel();
    let dialer = Dialer {
        incoming,
        down: Arc::new(AtomicBool::new(false)),
    };
    (dialer, UnboundedReceiverStream::new(rx))
}

impl Dialer {
    /// While `down`, every connection attempt is refused (`ConnectionRefused`), as from a
    /// stopped server.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// A channel with `endpoint`'s client settings over a fresh in-memory connection.
    ///
    /// # Errors
    /// The transport error when the dialer is down or the server has gone.
    pub async fn connect(&self, endpoint: Endpoint) -> Result<Channel, tonic::transport::Error> {
        let (incoming, down) = (self.incoming.clone(), self.down.clone());
        endpoint
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let (incoming, down) = (incoming.clone(), down.clone());
                async move {
                    if down.load(Ordering::SeqCst) {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            "in-memory server down",
                        ));
                    }
                    let (client, server) = tokio::io::duplex(PIPE_BYTES);
                    incoming
                        .send(Ok(server))
                        .map_err(|_| io::Error::other("in-memory server gone"))?;
                    Ok::<_, io::Error>(TokioIo::new(client))
                }
            }))
            .await
    }

    /// A channel with default client settings.
    ///
    /// # Panics
    /// When the connection fails (the dialer is down or the server has gone).
    pub async fn channel(&self) -> Channel {
        self.connect(Endpoint::from_static("http://in-memory"))
            .await
            .expect("in-memory connect")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::transport::Server;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    #[tokio::test(start_paused = true)]
    async fn speaks_grpc_and_refuses_while_down() {
        let (dialer, incoming) = pair();
        let (_reporter, health) = tonic_health::server::health_reporter();
        tokio::spawn(
            Server::builder()
                .add_service(health)
                .serve_with_incoming(incoming),
        );
        let reply = HealthClient::new(dialer.channel().await)
            .check(HealthCheckRequest::default())
            .await
            .expect("health over the in-memory channel");
        assert_eq!(reply.into_inner().status, 1, "SERVING");
        dialer.set_down(true);
        assert!(
            dialer
                .connect(Endpoint::from_static("http://in-memory"))
                .await
                .is_err()
        );
    }
}
