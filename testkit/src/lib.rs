//! echomesh test support, in one dev-only crate so no production crate carries any of it.
//!
//! Every crate's tests drive the same things: a real aggregator on loopback, agents speaking the
//! real Session protocol, a fake Kubernetes API, root- and tool-gated tests, and "wait until"
//! loops. Keeping one copy of each here means a protocol or harness change is made once and every
//! test sees it. Only `[dev-dependencies]` may name this crate.
//!
//! - [`aggregator`]: a real aggregator on `127.0.0.1:0`, stopped when its handle drops.
//! - [`duplex`]: real gRPC over in-memory streams, for loops tested under paused time.
//! - [`sim`]: a simulated agent over the real gRPC Session protocol.
//! - [`tls`]: a CA and server certificate made at test time, for the TLS tests.
//! - [`k8s`]: Node/Pod builders and a mocked Kubernetes API server for kube's real client.
//! - [`http`]: a tiny HTTP/1.1 GET client for the aggregator's HTTP port.
//! - [`mod@eventually`]: polling with a deadline and a panic that names what was awaited.
//! - [`root`]: `require_root!` / `require_command!`, which skip locally and fail in CI.
//! - [`metrics`]: reading OpenMetrics text.
//! - [`tcp`]: silent and garbage TCP peers, and waiting for the server to close them.
#![forbid(unsafe_code)]

pub mod aggregator;
pub mod duplex;
pub mod eventually;
pub mod http;
pub mod k8s;
pub mod metrics;
pub mod raw;
pub mod root;
pub mod sim;
pub mod tcp;
pub mod tls;

pub use aggregator::TestAggregator;

/// Where CI picks up test artifacts (screenshots, scrapes): `<target>/artifacts`, created if
/// missing. `target_tmpdir` is the test's `env!("CARGO_TARGET_TMPDIR")` (`<target>/tmp`).
///
/// # Panics
///
/// When the directory cannot be created.
#[must_use]
pub fn artifacts_dir(target_tmpdir: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(target_tmpdir).parent().map_or_else(
        || std::path::PathBuf::from("artifacts"),
        |t| t.join("artifacts"),
    );
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}
pub use eventually::{SOON, eventually, soon};
pub use sim::SimAgent;
