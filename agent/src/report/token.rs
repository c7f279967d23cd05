//! The token the agent proves itself with: the content of `--agent-token-file`, sent as
//! `authorization: Bearer <token>` on every Session call.
//!
//! Why re-read on every connect: in Kubernetes the file is a projected ServiceAccount token that
//! the kubelet rotates well before it expires; outside it, an operator rotates the shared token
//! by rewriting the file. Reading it once at start would lock a long-running agent out after the
//! first rotation. An unreadable or empty file fails that connection attempt (logged, retried
//! with backoff), never the agent.

use std::path::PathBuf;

use echomesh_proto::token::{TokenFileError, read_token_file};
use tonic::metadata::MetadataValue;

/// Where the token comes from.
#[derive(Debug, Clone)]
pub struct TokenSource {
    path: PathBuf,
}

impl TokenSource {
    /// A token read from `path` at every use.
    #[must_use]
    pub fn file(path: PathBuf) -> Self {
        Self { path }
    }

    /// The `authorization` metadata value to send now.
    ///
    /// # Errors
    /// The file is unreadable or holds no usable token.
    pub fn authorization(&self) -> Result<MetadataValue<tonic::metadata::Ascii>, TokenFileError> {
        let token = read_token_file(&self.path)?;
        // read_token_file admits visible ASCII only, which is always a valid metadata value.
        MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| TokenFileError::Invalid {
            path: self.path.clone(),
            why: "not usable as a gRPC metadata value".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_re_read_at_every_use() {
        let p = std::env::temp_dir().join(format!("echomesh-agent-token-{}", std::process::id()));
        std::fs::write(&p, "first\n").expect("write");
        let src = TokenSource::file(p.clone());
        assert_eq!(src.authorization().expect("ok"), "Bearer first");
        std::fs::write(&p, "second").expect("write");
        assert_eq!(src.authorization().expect("ok"), "Bearer second");
        std::fs::write(&p, "").expect("write");
        let e = src.authorization().expect_err("empty").to_string();
        assert!(e.ends_with("empty (write the token into the file)"), "{e}");
        let _ = std::fs::remove_file(&p);
    }
}
