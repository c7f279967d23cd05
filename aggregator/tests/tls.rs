//! TLS on the gRPC port with certificates made at test time: clients that trust the CA get
//! through, plaintext and untrusting clients do not, and a renewed certificate is served without
//! a restart.

use std::time::Duration;

use echomesh_proto::url::AggregatorUrl;
use echomesh_proto::v1::{self, Network, graph_service_client::GraphServiceClient};
use echomesh_testkit::sim::hello_message;
use echomesh_testkit::tls::TestPki;
use echomesh_testkit::{SOON, SimAgent, TestAggregator};
use tonic::transport::Channel;

async fn dial(url: &str, ca: Option<&[u8]>) -> Result<Channel, tonic::transport::Error> {
    AggregatorUrl::parse(url)
        .expect("url")
        .connect_with(Duration::from_secs(5), Some(Duration::from_secs(5)), ca)
        .await
}

/// An aggregator serving `pki`'s certificate on its gRPC port, and that port's `https://` URL.
async fn serve_tls(pki: &TestPki) -> (TestAggregator, String) {
    let (cert, key) = (pki.cert.clone(), pki.key.clone());
    let s = TestAggregator::start(move |c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
    })
    .await;
    let https = format!("https://127.0.0.1:{}", s.grpc_addr.port());
    (s, https)
}

/// Whether a client trusting `ca` (none: plaintext) gets an answer from `url`.
async fn served(url: &str, ca: Option<&[u8]>) -> bool {
    match dial(url, ca).await {
        Err(_) => false,
        Ok(ch) => status_ok(ch).await.is_ok(),
    }
}

async fn status_ok(ch: Channel) -> Result<v1::SummaryResponse, tonic::Status> {
    GraphServiceClient::new(ch)
        .summary(v1::SummaryRequest::default())
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn clients_that_trust_the_ca_get_through_and_others_do_not() {
    let pki = TestPki::new("serve");
    let (s, https) = serve_tls(&pki).await;
    let ca = std::fs::read(&pki.ca).expect("ca");

    let ch = dial(&https, Some(&ca)).await.expect("TLS connect");
    status_ok(ch.clone()).await.expect("GraphService over TLS");
    let mut agent = SimAgent::open(ch, hello_message("a", Network::Pod, "127.0.0.1"))
        .await
        .expect("session over TLS");
    agent.wait_assignment(0).await;

    // Plaintext to a TLS port: the call fails, nothing is served.
    let plain = format!("http://127.0.0.1:{}", s.grpc_addr.port());
    assert!(!served(&plain, None).await, "plaintext must not be served");
    // A CA that did not sign the server's certificate: the handshake fails.
    let other = TestPki::new("other");
    let other_ca = std::fs::read(&other.ca).expect("ca");
    assert!(
        !served(&https, Some(&other_ca)).await,
        "a client that does not trust the CA must not get through"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let mut pki = TestPki::new("reload");
    let (s, https) = serve_tls(&pki).await;
    let old_ca = std::fs::read(&pki.ca).expect("ca");
    status_ok(dial(&https, Some(&old_ca)).await.expect("connect"))
        .await
        .expect("old certificate served");

    let new_ca = pki.reissue().into_bytes();
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        if served(&https, Some(&new_ca)).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate was not served within {SOON:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !served(&https, Some(&old_ca)).await,
        "the old certificate is no longer served"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn unusable_certificate_files_stop_the_aggregator_at_start_with_the_reason() {
    let pki = TestPki::new("bad");
    std::fs::write(&pki.key, "not a key").expect("write");
    let mut cfg = echomesh_testkit::aggregator::test_config();
    cfg.tls_cert = Some(pki.cert.clone());
    cfg.tls_key = Some(pki.key.clone());
    let err = echomesh_aggregator::Aggregator::bind(cfg)
        .await
        .map(|_| ())
        .expect_err("refused")
        .to_string();
    assert!(
        err.starts_with(&format!(
            "TLS certificate {} / key {}: cannot read the private key",
            pki.cert.display(),
            pki.key.display()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn clients_that_connect_and_say_nothing_do_not_hold_up_the_others() {
    let pki = TestPki::new("silent");
    let (s, https) = serve_tls(&pki).await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(
            tokio::net::TcpStream::connect(s.grpc_addr)
                .await
                .expect("tcp"),
        );
    }
    let ca = std::fs::read(&pki.ca).expect("ca");
    let ch = dial(&https, Some(&ca))
        .await
        .expect("TLS connect beside silent clients");
    status_ok(ch).await.expect("served");
    drop(silent);
    s.shutdown().await;
}
