//! The aggregator's address, as every client writes it: `http://HOST:PORT`, or `unix:///path`
//! for a Unix socket (the namespace lab, a sidecar). The agent and the CLI both dial it, so the
//! accepted forms, the refusal message and the dialing live here once.

use std::fmt;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint, Uri};

/// A URL the agent and the CLI refuse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("aggregator URL {url:?}: {why}")]
pub struct UrlError {
    /// The URL as given (at most 256 characters of it).
    pub url: String,
    /// Why it is refused.
    pub why: &'static str,
}

/// A checked aggregator URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggregatorUrl {
    /// `http://HOST:PORT` (plaintext HTTP/2).
    Http(String),
    /// `unix:///path/to/socket`.
    Unix(String),
}

impl AggregatorUrl {
    /// Checks the form up front, so a typo fails at start and not on every reconnect.
    ///
    /// # Errors
    /// Anything but `http://HOST[:PORT]` or `unix:///non-empty-path`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let refuse = |why| UrlError {
            url: url.chars().take(256).collect(),
            why,
        };
        if let Some(path) = url.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(refuse("unix:// needs a socket path"));
            }
            return Ok(Self::Unix(path.to_string()));
        }
        if !url.starts_with("http://") {
            return Err(refuse(
                "must start with http:// (http://HOST:PORT) or unix:// (unix:///path)",
            ));
        }
        Endpoint::from_shared(url.to_string()).map_err(|_| refuse("not a valid http:// URL"))?;
        Ok(Self::Http(url.to_string()))
    }

    /// Dials once: `connect_timeout` bounds the connection, `request_timeout` (if any) every
    /// call on the channel.
    ///
    /// # Errors
    /// The transport error of the failed connection.
    pub async fn connect(
        &self,
        connect_timeout: Duration,
        request_timeout: Option<Duration>,
    ) -> Result<Channel, tonic::transport::Error> {
        let endpoint = match self {
            Self::Http(url) => Endpoint::from_shared(url.clone())?.tcp_nodelay(true),
            Self::Unix(_) => Endpoint::from_static("http://localhost"),
        };
        let mut endpoint = endpoint.connect_timeout(connect_timeout);
        if let Some(t) = request_timeout {
            endpoint = endpoint.timeout(t);
        }
        match self {
            Self::Http(_) => endpoint.connect().await,
            Self::Unix(path) => {
                let path = path.clone();
                endpoint
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                                tokio::net::UnixStream::connect(path).await?,
                            ))
                        }
                    }))
                    .await
            }
        }
    }
}

impl fmt::Display for AggregatorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(url) => f.write_str(url),
            Self::Unix(path) => write!(f, "unix://{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_unix_urls_are_accepted() {
        assert_eq!(
            AggregatorUrl::parse("http://127.0.0.1:7070"),
            Ok(AggregatorUrl::Http("http://127.0.0.1:7070".into()))
        );
        let unix = AggregatorUrl::parse("unix:///run/echomesh.sock").expect("unix");
        assert_eq!(unix, AggregatorUrl::Unix("/run/echomesh.sock".into()));
        assert_eq!(unix.to_string(), "unix:///run/echomesh.sock");
    }

    #[test]
    fn other_urls_are_refused_with_the_reason() {
        for (url, why) in [
            (
                "https://x:1",
                "must start with http:// (http://HOST:PORT) or unix:// (unix:///path)",
            ),
            (
                "ftp://x",
                "must start with http:// (http://HOST:PORT) or unix:// (unix:///path)",
            ),
            ("unix://", "unix:// needs a socket path"),
            ("http://bad host", "not a valid http:// URL"),
        ] {
            assert_eq!(
                AggregatorUrl::parse(url).map_err(|e| e.to_string()),
                Err(format!("aggregator URL {url:?}: {why}"))
            );
        }
        let long = format!("ftp://{}", "x".repeat(1000));
        let err = AggregatorUrl::parse(&long).expect_err("refused");
        assert_eq!(err.url.chars().count(), 256);
    }
}
