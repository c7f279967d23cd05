//! Certificates made at test time: a CA and a server certificate for `localhost` and
//! `127.0.0.1`, written as PEM files the aggregator and its clients are pointed at.
//!
//! Why made per test and not checked in: a checked-in certificate expires and makes the suite
//! fail on a date; a private key in the repository invites copying it somewhere real.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA and a server certificate it signed, as files in a private temporary directory
/// (removed on drop).
#[derive(Debug)]
pub struct TestPki {
    dir: PathBuf,
    /// The CA certificate (PEM): what clients pass as `--tls-ca`.
    pub ca: PathBuf,
    /// The server certificate (PEM): `--tls-cert`.
    pub cert: PathBuf,
    /// The server key (PEM): `--tls-key`.
    pub key: PathBuf,
    issued: u32,
}

impl TestPki {
    /// A fresh CA and server certificate in a new directory named after `tag`.
    ///
    /// # Panics
    ///
    /// When the files cannot be written.
    #[must_use]
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("echomesh-pki-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pki dir");
        let mut pki = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            dir,
            issued: 0,
        };
        pki.reissue();
        pki
    }

    /// Replaces every file with a new CA and a server certificate signed by it, and moves the
    /// files' modification time forward (so a reload is seen whatever the clock granularity).
    /// Returns the new CA's PEM.
    ///
    /// # Panics
    ///
    /// When a certificate cannot be made or written.
    pub fn reissue(&mut self) -> String {
        self.issued += 1;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("echomesh test CA {}", self.issued),
        );
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca");
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "echomesh-aggregator");
        let cert = params.signed_by(&key, &ca).expect("cert");
        let later = SystemTime::now() + Duration::from_secs(10 * u64::from(self.issued));
        for (path, pem) in [
            (&self.ca, ca.pem()),
            (&self.key, key.serialize_pem()),
            (&self.cert, cert.pem()),
        ] {
            std::fs::write(path, &pem).expect("write pem");
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(later))
                .expect("mtime");
        }
        ca.pem()
    }

    /// The directory holding the files.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
