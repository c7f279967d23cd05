//! The CLI against an aggregator serving TLS with a certificate made at test time: `https://` with
//! `--tls-ca` gets through, a CA for a plaintext URL and a CA that did not sign the certificate are
//! refused with the reason.

mod support;

use clap::Parser as _;
use echomesh_cli::Cli;
use echomesh_testkit::TestAggregator;
use echomesh_testkit::tls::TestPki;

async fn run(args: &[&str]) -> (i32, String, String) {
    support::run_cli(&Cli::try_parse_from(args).expect("args")).await
}

#[tokio::test]
async fn https_with_the_ca_works_and_mistakes_are_refused_with_the_reason() {
    let pki = TestPki::new("cli");
    let (cert, key) = (pki.cert.clone(), pki.key.clone());
    let agg = TestAggregator::start(move |c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
    })
    .await;
    let https = format!("https://127.0.0.1:{}", agg.grpc_addr.port());
    let ca = pki.ca.display().to_string();

    let (code, out, err) = run(&[
        "echomesh",
        "--aggregator",
        &https,
        "--tls-ca",
        &ca,
        "status",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");

    let plain = format!("http://127.0.0.1:{}", agg.grpc_addr.port());
    let (code, _, err) = run(&[
        "echomesh",
        "--aggregator",
        &plain,
        "--tls-ca",
        &ca,
        "status",
    ])
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("--tls-ca is given, so the aggregator URL must start with https://"),
        "{err}"
    );

    let other = TestPki::new("cli-other");
    let other_ca = other.ca.display().to_string();
    let (code, _, err) = run(&[
        "echomesh",
        "--aggregator",
        &https,
        "--tls-ca",
        &other_ca,
        "status",
    ])
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot reach the aggregator"), "{err}");
    agg.shutdown().await;
}
