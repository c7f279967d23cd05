//! Logging for every binary: one filter variable (`ECHOMESH_LOG`), one format variable
//! (`ECHOMESH_LOG_FORMAT`), logs on standard error so machine-readable output on standard output
//! (`probe -o json`, `echomesh … -o json`) stays clean. Colours only when standard error is a
//! terminal, so redirected logs and log collectors get plain text.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `filter` is an env-filter directive such as `info` or
/// `echomesh_agent=debug`; an unparsable one falls back to `warn` and says so. A subscriber that is
/// already installed (tests) is kept.
pub fn init(format: LogFormat, filter: &str) {
    let (filter, bad) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("warn"), Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Text => builder.try_init().is_ok(),
        LogFormat::Json => builder.json().try_init().is_ok(),
    };
    if let (true, Some(e)) = (installed, bad) {
        tracing::warn!(error = %e, "ECHOMESH_LOG / --log is not a valid filter; logging at warn");
    }
}
