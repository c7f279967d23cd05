//! How the session gets a gRPC channel to the aggregator.
//!
//! The loop asks a [`Connector`] instead of dialing a URL itself, so the same loop runs over TCP,
//! a Unix socket (the namespace lab) or an in-memory stream in tests, and only this file knows
//! about addresses.

use std::future::Future;
use std::time::Duration;

use echomesh_proto::url::AggregatorUrl;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use super::args::RunError;
use super::token::TokenSource;

/// How long one connection attempt may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes a fresh channel to the aggregator for each session.
pub trait Connector: Send {
    /// Connects once; the loop retries with backoff on error.
    fn connect(&mut self) -> impl Future<Output = Result<Channel, ConnectError>> + Send;
    /// Where it connects, for logs.
    fn target(&self) -> &str;
    /// The `authorization` metadata for the next Session call (`None`: send none). Asked on every
    /// connect, so a rotated token is used from the next session on.
    fn authorization(&self) -> Result<Option<MetadataValue<Ascii>>, ConnectError> {
        Ok(None)
    }
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
    /// The agent token could not be read.
    #[error(transparent)]
    Token(#[from] echomesh_proto::token::TokenFileError),
    /// The CA certificate could not be read.
    #[error("{0}")]
    TlsCa(String),
}

/// Connects to an `http://HOST:PORT` or `unix:///path` URL.
#[derive(Debug, Clone)]
pub struct UrlConnector {
    url: AggregatorUrl,
    shown: String,
    timeout: Duration,
    token: Option<TokenSource>,
    tls_ca: Option<std::path::PathBuf>,
}

impl UrlConnector {
    /// Checks the scheme up front so a typo fails at start, not on every retry.
    pub fn new(url: &str) -> Result<Self, RunError> {
        let parsed = AggregatorUrl::parse(url)?;
        Ok(Self {
            shown: parsed.to_string(),
            url: parsed,
            timeout: CONNECT_TIMEOUT,
            token: None,
            tls_ca: None,
        })
    }

    /// Checks an `https://` aggregator's certificate against the CA in `ca` (PEM), re-read at
    /// every connect so a rotated CA is picked up.
    ///
    /// # Errors
    /// A CA given for a URL that is not `https://`.
    pub fn with_tls_ca(mut self, ca: Option<std::path::PathBuf>) -> Result<Self, RunError> {
        self.url.check_ca(ca.is_some())?;
        self.tls_ca = ca;
        Ok(self)
    }

    /// Sends the token read from `token` on every session.
    #[must_use]
    pub fn with_token(mut self, token: Option<TokenSource>) -> Self {
        self.token = token;
        self
    }
}

impl Connector for UrlConnector {
    fn connect(&mut self) -> impl Future<Output = Result<Channel, ConnectError>> + Send {
        let (url, timeout, ca) = (self.url.clone(), self.timeout, self.tls_ca.clone());
        async move {
            let pem = ca
                .map(|p| echomesh_proto::url::read_ca(&p))
                .transpose()
                .map_err(ConnectError::TlsCa)?;
            Ok(url.connect_with(timeout, None, pem.as_deref()).await?)
        }
    }

    fn target(&self) -> &str {
        &self.shown
    }

    fn authorization(&self) -> Result<Option<MetadataValue<Ascii>>, ConnectError> {
        Ok(self
            .token
            .as_ref()
            .map(TokenSource::authorization)
            .transpose()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_https_and_unix_urls_are_accepted() {
        assert!(UrlConnector::new("http://127.0.0.1:7070").is_ok());
        assert!(UrlConnector::new("https://127.0.0.1:7070").is_ok());
        assert!(UrlConnector::new("unix:///run/echomesh.sock").is_ok());
        let err = UrlConnector::new("ftp://x:1")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("aggregator URL \"ftp://x:1\": must start with http:// (http://HOST:PORT), https:// (https://HOST:PORT) or unix:// (unix:///path)".into())
        );
    }

    #[test]
    fn a_tls_ca_needs_an_https_url() {
        let err = UrlConnector::new("http://127.0.0.1:7070")
            .and_then(|c| c.with_tls_ca(Some("/etc/ca.pem".into())))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("aggregator URL \"http://127.0.0.1:7070\": --tls-ca is given, so the aggregator URL must start with https://".into())
        );
    }
}
