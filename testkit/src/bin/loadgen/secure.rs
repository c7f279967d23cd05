//! `--secure`: the same load over TLS with a shared agent token, to price authentication and
//! encryption against the plaintext run.
//!
//! A CA, the server's certificate and a random token are made at start in a private temporary
//! directory (removed at the end); the aggregator child gets `--tls-cert`, `--tls-key` and
//! `--agent-token-file`, every simulated agent dials `https://` with the CA and sends the token.

use std::path::PathBuf;

use echomesh_testkit::tls::TestPki;

/// What the server and the clients need for a secure run.
pub(crate) struct Secure {
    pki: TestPki,
    /// The shared agent token file.
    pub(crate) token_file: PathBuf,
    /// `Bearer <token>`, as each agent sends it.
    pub(crate) authorization: String,
    /// The CA certificate (PEM) the agents trust.
    pub(crate) ca_pem: Vec<u8>,
}

impl Secure {
    /// Makes the certificates and the token.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let pki = TestPki::new("loadgen");
        let token: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
        let token_file = pki.dir().join("agent-token");
        std::fs::write(&token_file, &token)?;
        let ca_pem = std::fs::read(&pki.ca)?;
        Ok(Self {
            pki,
            token_file,
            authorization: format!("Bearer {token}"),
            ca_pem,
        })
    }

    /// The aggregator's extra flags.
    pub(crate) fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.pki.cert.display().to_string(),
            "--tls-key".into(),
            self.pki.key.display().to_string(),
            "--agent-token-file".into(),
            self.token_file.display().to_string(),
        ]
    }
}

/// A byte from the kernel's randomness (the token must not be guessable, even in a bench).
fn rand_byte() -> u8 {
    use std::io::Read as _;
    let mut b = [0u8; 1];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    b[0]
}
