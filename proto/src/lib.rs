//! The vocabulary agents and the aggregator share.
//!
//! Everything that crosses the agent → aggregator boundary lives here so both sides agree on it by
//! construction:
//! - [`histogram`]: the mergeable log-bucket RTT histogram. Agents fill one per target per report
//!   window; the aggregator merges them into rolling windows without losing accuracy.
//! - [`v1`]: the generated protobuf messages and gRPC stubs of `echomesh/v1/*.proto`
//!   (`AgentService`, `GraphService`), generated at build time without a system `protoc`.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, served by gRPC reflection so `grpcurl`
//!   works without the proto files.
//! - [`bound`]: counting a message's repeated entries on its wire bytes, before decoding.
//! - [`wire`]: conversions between the wire histogram and [`Histogram`].
//! - [`url`]: the aggregator URL (`http://` or `unix://`) every client checks and dials.
//! - [`network`]: the names of [`v1::Network`] (`pod`, `host`, `any`) used by every tool.
//! - [`view`]: the one JSON rendering of a [`v1::Edge`], shared by the JSON API and the CLI.
#![forbid(unsafe_code)]

pub mod bound;
pub mod histogram;
pub mod network;
pub mod token;
pub mod url;
pub mod view;
pub mod wire;

pub use histogram::{Histogram, HistogramError};

/// Generated code for package `echomesh.v1`.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("echomesh.v1");
}

/// Encoded `FileDescriptorSet` of every echomesh proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/echomesh_descriptor.bin"));
