//! The aggregator's address, as every client writes it: `http://HOST:PORT`, `https://HOST:PORT`
//! (TLS: the server certificate is checked against `--tls-ca`, or the system's roots without
//! it), or `unix:///path` for a Unix socket (the namespace lab, a sidecar). The agent and the CLI both dial it, so the
//! accepted forms, the refusal message and the dialing live here once.

use std::fmt;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Uri};

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
    /// `https://HOST:PORT` (HTTP/2 over TLS).
    Https(String),
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
        if url.starts_with("https://") {
            Endpoint::from_shared(url.to_string())
                .map_err(|_| refuse("not a valid https:// URL"))?;
            return Ok(Self::Https(url.to_string()));
        }
        if !url.starts_with("http://") {
            return Err(refuse(
                "must start with http:// (http://HOST:PORT), https:// (https://HOST:PORT) or unix:// (unix:///path)",
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
        self.connect_with(connect_timeout, request_timeout, None)
            .await
    }

    /// Whether `--tls-ca` fits this URL: a CA is only for `https://`.
    ///
    /// # Errors
    /// A CA given for a plaintext or unix URL (it would silently not be used).
    pub fn check_ca(&self, has_ca: bool) -> Result<(), UrlError> {
        if has_ca && !matches!(self, Self::Https(_)) {
            return Err(UrlError {
                url: self.to_string().chars().take(256).collect(),
                why: "--tls-ca is given, so the aggregator URL must start with https://",
            });
        }
        Ok(())
    }

    /// [`AggregatorUrl::connect`] checking an `https://` server's certificate against `ca_pem`
    /// (PEM; `None`: the system's root certificates).
    ///
    /// # Errors
    /// The transport error of the failed connection (a certificate the CA did not sign included).
    pub async fn connect_with(
        &self,
        connect_timeout: Duration,
        request_timeout: Option<Duration>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Channel, tonic::transport::Error> {
        let endpoint = match self {
            Self::Http(url) => Endpoint::from_shared(url.clone())?.tcp_nodelay(true),
            Self::Https(url) => {
                let tls = match ca_pem {
                    Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
                    None => ClientTlsConfig::new().with_native_roots(),
                };
                Endpoint::from_shared(url.clone())?
                    .tcp_nodelay(true)
                    .tls_config(tls)?
            }
            Self::Unix(_) => Endpoint::from_static("http://localhost"),
        };
        // HTTP/2 pings every 10 s, even without a call in flight: a blackholed aggregator (no FIN,
        // no RST) is noticed within 20 s instead of at the next TCP retransmission timeout.
        let mut endpoint = endpoint
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        if let Some(t) = request_timeout {
            endpoint = endpoint.timeout(t);
        }
        match self {
            Self::Http(_) | Self::Https(_) => endpoint.connect().await,
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

/// How often a client channel pings the aggregator.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the channel is closed.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

impl fmt::Display for AggregatorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(url) | Self::Https(url) => f.write_str(url),
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
        assert_eq!(
            AggregatorUrl::parse("https://agg.example:7070"),
            Ok(AggregatorUrl::Https("https://agg.example:7070".into()))
        );
        for (url, why) in [
            (
                "ftp://x",
                "must start with http:// (http://HOST:PORT), https:// (https://HOST:PORT) or unix:// (unix:///path)",
            ),
            ("https://bad host", "not a valid https:// URL"),
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

/// Reads the CA certificate(s) a client checks the aggregator against (`--tls-ca`, PEM).
///
/// # Errors
/// The file is unreadable or holds no `CERTIFICATE` block, said with its path.
pub fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(format!(
            "--tls-ca {}: no PEM CERTIFICATE block in the file",
            path.display()
        ));
    }
    Ok(pem)
}

#[cfg(test)]
mod tls_tests {
    use super::*;

    #[test]
    fn a_ca_is_only_for_https_urls() {
        let http = AggregatorUrl::parse("http://x:1").expect("ok");
        assert_eq!(
            http.check_ca(true).map_err(|e| e.to_string()),
            Err("aggregator URL \"http://x:1\": --tls-ca is given, so the aggregator URL must start with https://".into())
        );
        assert!(http.check_ca(false).is_ok());
        assert!(
            AggregatorUrl::parse("https://x:1")
                .expect("ok")
                .check_ca(true)
                .is_ok()
        );
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let p = std::env::temp_dir().join(format!("echomesh-ca-test-{}", std::process::id()));
        std::fs::write(&p, "not a certificate").expect("write");
        assert_eq!(
            read_ca(&p),
            Err(format!(
                "--tls-ca {}: no PEM CERTIFICATE block in the file",
                p.display()
            ))
        );
        let _ = std::fs::remove_file(&p);
        assert!(
            read_ca(std::path::Path::new("/nonexistent/ca.pem"))
                .expect_err("missing")
                .starts_with("--tls-ca /nonexistent/ca.pem: ")
        );
    }
}
