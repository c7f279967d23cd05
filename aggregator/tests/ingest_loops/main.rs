//! The aggregator's timed ingest loops (hello timeout, debounced assigner, a stuck agent) over
//! real gRPC on in-memory streams, with time paused.
//!
//! Why paused time: these loops are defined by durations (10 s hello timeout, assignment
//! debounce, 5 s send timeout); virtual time checks both sides of each boundary exactly, and the
//! tests take no wall time and cannot flake on a loaded machine.
//!
//! - [`hello_timeout`], [`assigner`], [`stuck_agent`]: one loop each; [`surge`]: two agents of
//!   one node and network over minutes; [`rotation`]: rounds woken by a rotating policy.

mod assigner;
mod hello_timeout;
mod rotation;
mod stuck_agent;
mod surge;

use std::sync::Arc;
use std::time::Duration;

use echomesh_aggregator::graph::{EventHub, GraphConfig};
use echomesh_aggregator::ingest::{IngestConfig, IngestErrorReason};
use echomesh_aggregator::policy::{FullMesh, PinglistSource};
use echomesh_aggregator::{Graph, Ingest};

use echomesh_proto::v1::agent_service_server::AgentServiceServer;
use echomesh_testkit::duplex::{self, Dialer};
use tonic::transport::Server;

/// Quiet time before pinglists are recomputed in these tests.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// The hello timeout in these tests.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running ingest: its assigner loop, and a server for agents to connect to.
struct Loops {
    ingest: Ingest,
    graph: Arc<Graph>,
    server: Dialer,
}

impl Loops {
    /// The ingest as `aggregator::Aggregator` builds it (full mesh), with its assigner running,
    /// served in memory.
    fn start() -> Self {
        Self::start_with(Arc::new(FullMesh))
    }

    /// [`Loops::start`] with `pinglist` instead of the full mesh.
    fn start_with(pinglist: Arc<dyn PinglistSource>) -> Self {
        let cfg = IngestConfig {
            assign_debounce: DEBOUNCE,
            hello_timeout: HELLO_TIMEOUT,
            // The smallest outbox a session gets, so a stuck agent fills it quickly.
            session_buffer: 4,
            ..IngestConfig::default()
        };
        let graph = Arc::new(Graph::new(GraphConfig::default(), EventHub::new(1024, 16)));
        let ingest = Ingest::new(graph.clone(), cfg, pinglist);
        tokio::spawn(ingest.clone().run_assigner(std::future::pending()));
        let (server, incoming) = duplex::pair();
        let served = ingest.clone();
        tokio::spawn(async move {
            Server::builder()
                .add_service(AgentServiceServer::new(served))
                .serve_with_incoming(incoming)
                .await
                .expect("in-memory gRPC server");
        });
        Self {
            ingest,
            graph,
            server,
        }
    }

    /// How many refusals were counted for `reason`.
    fn errors(&self, reason: IngestErrorReason) -> u64 {
        self.ingest
            .errors()
            .into_iter()
            .find_map(|(r, n)| (r == reason).then_some(n))
            .expect("every reason is counted")
    }
}
