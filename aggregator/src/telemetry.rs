//! Logging setup for the aggregator binaries: `RUST_LOG`-style filtering, text or JSON lines.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (call once, from `main`).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}
