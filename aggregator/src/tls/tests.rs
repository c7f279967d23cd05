use std::time::Duration;

use echomesh_testkit::SOON;
use echomesh_testkit::tls::TestPki;
use futures::StreamExt as _;
use tokio::io::AsyncReadExt as _;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::*;

/// A TLS client trusting `ca` completes a handshake with `addr`.
async fn handshake(addr: std::net::SocketAddr, ca: &Path) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    tokio::time::timeout(
        Duration::from_secs(2),
        TlsConnector::from(Arc::new(cfg)).connect(name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map(drop)
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn beyond_the_handshake_limit_a_connection_is_closed_and_a_freed_slot_serves_again() {
    let pki = TestPki::new("handshake-limit");
    let certs = Arc::new(ReloadingCert::open(&pki.cert, &pki.key).expect("pair"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Two handshakes at once, each allowed far longer than the test runs.
    let mut accepted = Box::pin(incoming_limited(
        listener,
        server_config(certs).expect("config"),
        2,
        Duration::from_secs(600),
    ));
    // Connections are accepted in order: these two hold both slots, saying nothing.
    let first = TcpStream::connect(addr).await.expect("tcp");
    let _second = TcpStream::connect(addr).await.expect("tcp");
    let mut third = TcpStream::connect(addr).await.expect("tcp");
    let read = tokio::time::timeout(SOON, third.read(&mut [0u8; 1]))
        .await
        .expect("the third connection is closed, not left waiting");
    assert!(matches!(read, Ok(0) | Err(_)), "closed at once: {read:?}");

    // The first client goes away: its handshake fails and frees its slot for a real client.
    drop(first);
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        match handshake(addr, &pki.ca).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "slot not yet free");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no slot freed within {SOON:?}: {e}"),
        }
    }
    let served = tokio::time::timeout(SOON, accepted.next())
        .await
        .expect("a connection served")
        .expect("stream open");
    assert!(served.is_ok(), "{served:?}");
}
