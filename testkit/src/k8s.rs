//! Kubernetes without a cluster: object builders and a mocked API server.
//!
//! Discovery is tested through kube's real `Client`, `watcher` and `reflector` (the code that
//! misbehaves in production is there), so only the API server is fake. Both the aggregator's unit
//! tests and its integration tests use these; the k8s-openapi and kube types are the same crates
//! the aggregator links, so the objects and the client plug straight in.

pub mod fixtures;
pub mod mock_api;
pub mod token_review;
pub mod write_api;
