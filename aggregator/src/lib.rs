//! echomesh aggregator: agent sessions in, the live cluster connectivity graph out.
//!
//! Layers, bottom up; each imports only the layers below it:
//! - [`graph`]: the live graph: identities, fixed-size edge records with their sketches and state
//!   machine, the per-agent store and the state-change events it emits.
//! - [`policy`]: who probes whom, behind a trait (full mesh of connected agents by default).
//! - [`auth`]: who may open an agent session and which node it may speak for (below ingest).
//! - [`ingest`]: `AgentService.Session`: hello, sessions, pinglist assignments, refusal counters.
//! - [`discovery`]: with `--kubernetes`, Node and agent-Pod watches -> cluster model -> pinglists.
//! - [`diagnose`]: from a snapshot of the graph, the fewest culprits explaining its failing edges.
//! - [`node_conditions`]: with `--node-condition-after`, the Node condition and Event for a node
//!   the diagnosis blames too long (the only writer of cluster objects; above `diagnose`).
//! - [`api`]: the `GraphService` implementation and the one edge view every reader uses.
//! - [`tls`]: the gRPC port's optional TLS, its certificate reloaded when the files change.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, the heatmap page and the JSON API.
//! - [`config`]: flags (each also an `ECHOMESH_*` env var), turned into each layer's settings.
//! - [`readiness`]: why the aggregator is not ready, set by the server and discovery, read by `/readyz`.
//! - [`server`]: listeners, wiring of the layers, serving and draining.
//! - [`background`]: whole-graph work on the blocking pool, at a lower CPU priority.
//! - [`memory`]: ordinary pages only (no transparent huge pages), set once by `main`.
//!
//! [`Aggregator::bind`] takes its listeners first and [`Aggregator::serve`] runs until the
//! shutdown future resolves, so tests bind `127.0.0.1:0` and drive a real server.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod background;
pub mod config;
pub mod conn;
pub mod diagnose;
pub mod discovery;
pub mod graph;
pub mod http;
pub mod ingest;
pub mod limit;
pub mod memory;
pub mod node_conditions;
pub mod policy;
pub mod readiness;
pub mod server;
pub mod tls;

pub use config::Config;
pub use graph::Graph;
pub use ingest::Ingest;
pub use server::{Aggregator, ServerError, run};
