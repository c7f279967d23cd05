//! How the session gets a gRPC channel to the aggregator.
//!
//! The loop asks a [`Connector`] instead of dialing a URL itself, so the same loop runs over TCP,
//! a Unix socket (the namespace lab) or an in-memory stream in tests, and only this file knows
//! about addresses.

use std::future::Future;
use std::time::Duration;

use echomesh_proto::url::AggregatorUrl;
use tonic::transport::Channel;

use super::args::RunError;

/// How long one connection attempt may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes a fresh channel to the aggregator for each session.
pub trait Connector: Send {
    /// Connects once; the loop retries with backoff on error.
    fn connect(&mut self) -> impl Future<Output = Result<Channel, ConnectError>> + Send;
    /// Where it connects, for logs.
    fn target(&self) -> &str;
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Transport error.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The session was refused.
    #[error("session refused: {0}")]
    Status(#[from] tonic::Status),
}

/// Connects to an `http://HOST:PORT` or `unix:///path` URL.
#[derive(Debug, Clone)]
pub struct UrlConnector {
    url: AggregatorUrl,
    shown: String,
    timeout: Duration,
}

impl UrlConnector {
    /// Checks the scheme up front so a typo fails at start, not on every retry.
    pub fn new(url: &str) -> Result<Self, RunError> {
        let parsed = AggregatorUrl::parse(url)?;
        Ok(Self {
            shown: parsed.to_string(),
            url: parsed,
            timeout: CONNECT_TIMEOUT,
        })
    }
}

impl Connector for UrlConnector {
    fn connect(&mut self) -> impl Future<Output = Result<Channel, ConnectError>> + Send {
        let (url, timeout) = (self.url.clone(), self.timeout);
        async move { Ok(url.connect(timeout, None).await?) }
    }

    fn target(&self) -> &str {
        &self.shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_unix_urls_are_accepted() {
        assert!(UrlConnector::new("http://127.0.0.1:7070").is_ok());
        assert!(UrlConnector::new("unix:///run/echomesh.sock").is_ok());
        let err = UrlConnector::new("https://x:1")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("aggregator URL \"https://x:1\": must start with http:// (http://HOST:PORT) or unix:// (unix:///path)".into())
        );
    }
}
