//! How the session gets a gRPC channel to the aggregator.
//!
//! The loop asks a [`Connector`] instead of dialing a URL itself, so the same loop runs over TCP,
//! a Unix socket (the namespace lab) or an in-memory stream in tests, and only this file knows
//! about addresses.

use std::future::Future;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint, Uri};

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
    /// Unusable URL.
    #[error("unusable URL")]
    Url,
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
    url: String,
    timeout: Duration,
}

impl UrlConnector {
    /// Checks the scheme up front so a typo fails at start, not on every retry.
    pub fn new(url: &str) -> Result<Self, RunError> {
        if !(url.starts_with("http://") || url.starts_with("unix://")) {
            return Err(RunError::Url(url.to_string()));
        }
        Ok(Self {
            url: url.to_string(),
            timeout: CONNECT_TIMEOUT,
        })
    }
}

impl Connector for UrlConnector {
    fn connect(&mut self) -> impl Future<Output = Result<Channel, ConnectError>> + Send {
        let (url, timeout) = (self.url.clone(), self.timeout);
        async move { connect(&url, timeout).await }
    }

    fn target(&self) -> &str {
        &self.url
    }
}

/// Connects to `url` (http:// or unix://).
pub async fn connect(url: &str, timeout: Duration) -> Result<Channel, ConnectError> {
    if let Some(path) = url.strip_prefix("unix://") {
        let path = path.to_string();
        return Ok(Endpoint::from_static("http://localhost")
            .connect_timeout(timeout)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await?);
    }
    Ok(Endpoint::from_shared(url.to_string())
        .map_err(|_| ConnectError::Url)?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .connect()
        .await?)
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
            Err("aggregator URL \"https://x:1\": must be http://HOST:PORT or unix:///path".into())
        );
    }
}
