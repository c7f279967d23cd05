//! Real gRPC over in-memory streams: every client connection is one `tokio::io::duplex` pair
//! whose server half is handed to a tonic server running the real `Ingest`.
//!
//! Why not sockets: with no kernel I/O the whole conversation (HTTP/2, gRPC framing, flow
//! control) runs inside the test's runtime, so paused time governs every timer on both sides and
//! a timeout is measured exactly instead of raced against the wall clock.

use std::io;

use echomesh_aggregator::Ingest;
use echomesh_proto::v1::agent_service_server::AgentServiceServer;
use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint, Server, Uri};

/// Bytes buffered in each direction of one in-memory connection.
const PIPE_BYTES: usize = 64 * 1024;

/// A tonic server for `AgentService` fed with in-memory connections.
pub(crate) struct DuplexServer {
    incoming: mpsc::UnboundedSender<io::Result<DuplexStream>>,
}

impl DuplexServer {
    /// Serves `ingest` until the test ends.
    pub(crate) fn serve(ingest: Ingest) -> Self {
        let (incoming, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            Server::builder()
                .add_service(AgentServiceServer::new(ingest))
                .serve_with_incoming(UnboundedReceiverStream::new(rx))
                .await
                .expect("in-memory gRPC server");
        });
        Self { incoming }
    }

    /// A channel over a fresh in-memory connection.
    pub(crate) async fn channel(&self) -> Channel {
        self.connect(Endpoint::from_static("http://in-memory"))
            .await
    }

    /// A channel with `endpoint`'s client settings over a fresh in-memory connection.
    pub(crate) async fn connect(&self, endpoint: Endpoint) -> Channel {
        let incoming = self.incoming.clone();
        endpoint
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let incoming = incoming.clone();
                async move {
                    let (client, server) = tokio::io::duplex(PIPE_BYTES);
                    incoming
                        .send(Ok(server))
                        .map_err(|_| io::Error::other("in-memory server gone"))?;
                    Ok::<_, io::Error>(TokioIo::new(client))
                }
            }))
            .await
            .expect("in-memory connect")
    }
}
