//! TLS on the aggregator's gRPC port (`--tls-cert`, `--tls-key`), reloaded when the files change.
//!
//! Why reloaded and not read once: certificates from cert-manager (or any short-lived issuer) are
//! renewed in place, in the mounted Secret; a server that read them at start would serve an
//! expired certificate until someone restarted it. The resolver looks at the two files'
//! modification times at most once per [`RECHECK`] and re-reads them when either changed; a pair
//! that does not load (half-written, key not matching) is logged and the previous one kept, so a
//! renewal in progress never takes the port down. Handshakes run off the accept loop, each bounded
//! by [`HANDSHAKE_TIMEOUT`] and at most [`MAX_HANDSHAKES`] at once, so clients that connect and
//! say nothing hold only their own sockets, and not many of them.
//!
//! rustls with the ring provider: no OpenSSL in the images.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::Stream;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

/// How often the files' modification times are looked at (at most, on handshakes).
pub const RECHECK: Duration = Duration::from_secs(1);
/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress; a connection beyond it is closed at once (it counts against no
/// other limit until its handshake is done, so this bounds what silent clients can hold).
pub const MAX_HANDSHAKES: usize = 512;

/// A certificate and key pair that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("TLS certificate {cert} / key {key}: {why}")]
pub struct TlsError {
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file.
    pub key: PathBuf,
    /// Why.
    pub why: String,
}

/// Loads the chain in `cert` and the key in `key` (PEM).
///
/// # Errors
/// A file is unreadable, holds no certificate or key, or the key does not match the certificate.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let err = |why: String| TlsError {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err(format!("cannot read the certificate: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("cannot read the certificate: {e}")))?;
    if chain.is_empty() {
        return Err(err("no CERTIFICATE block in the certificate file".into()));
    }
    let pkey = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| err(format!("cannot read the private key: {e}")))?;
    CertifiedKey::from_der(chain, pkey, &default_provider())
        .map_err(|e| err(format!("the key does not fit the certificate: {e}")))
}

fn mtimes(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(cert), m(key))
}

/// The current certificate, re-read when its files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Arc<CertifiedKey>,
    seen: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl ReloadingCert {
    /// Loads the pair now, so unusable files stop the aggregator at start.
    ///
    /// # Errors
    /// As [`load_pair`].
    pub fn open(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let seen = mtimes(cert, key);
        let current = Arc::new(load_pair(cert, key)?);
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            state: Mutex::new(State {
                current,
                seen,
                checked: Instant::now(),
            }),
        })
    }

    /// The pair to present now, reloaded first if the files changed since the last look.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut s = self.state.lock();
        if s.checked.elapsed() >= RECHECK {
            s.checked = Instant::now();
            let now = mtimes(&self.cert, &self.key);
            if now != s.seen {
                s.seen = now;
                match load_pair(&self.cert, &self.key) {
                    Ok(k) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                        s.current = Arc::new(k);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate files changed but do not load; keeping the previous pair");
                    }
                }
            }
        }
        s.current.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A rustls server configuration over `certs`, speaking HTTP/2 only (gRPC).
///
/// # Errors
/// The ring provider refuses the default protocol versions (does not happen in practice).
pub fn server_config(certs: Arc<ReloadingCert>) -> Result<ServerConfig, rustls::Error> {
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// Accepts on `listener` and yields the connections whose TLS handshake completed; handshakes
/// run concurrently, each within [`HANDSHAKE_TIMEOUT`], failures logged at debug level.
pub fn incoming(
    listener: TcpListener,
    cfg: ServerConfig,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static {
    incoming_limited(listener, cfg, MAX_HANDSHAKES, HANDSHAKE_TIMEOUT)
}

/// [`incoming`] with at most `max_handshakes` in progress, each within `timeout` (tests set
/// small limits to fill them).
pub fn incoming_limited(
    listener: TcpListener,
    cfg: ServerConfig,
    max_handshakes: usize,
    timeout: Duration,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static {
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(max_handshakes));
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "too many TLS handshakes in progress; connection closed");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests;
