//! Outside Kubernetes: one shared token, in a file both the agents and the aggregator read.
//!
//! Why a file and not a flag value: a flag shows in `ps` and in the process's environment. The
//! file is re-read when its modification time changes, so the token can be rotated without a
//! restart (write the new token to the aggregator's file first, then to the agents'). Comparison
//! is in constant time, so response timing does not reveal how much of a guess was right. A
//! shared token names no node: any holder may speak for any node, so it suits a lab or a small
//! bare-metal fleet; in Kubernetes each agent's own ServiceAccount token is used instead.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use echomesh_proto::token::{TokenFileError, read_token_file};
use parking_lot::Mutex;
use subtle::ConstantTimeEq as _;

use super::{AgentAuth, AuthError, AuthFailure, Identity};
use crate::graph::{AgentInfo, AgentKey};

/// Accepts sessions whose bearer token equals the file's content.
#[derive(Debug)]
pub struct SharedToken {
    path: PathBuf,
    current: Mutex<(Option<SystemTime>, String)>,
}

impl SharedToken {
    /// Reads the token once now, so a missing or empty file stops the aggregator at start.
    ///
    /// # Errors
    /// The file is unreadable or holds no usable token.
    pub fn open(path: &Path) -> Result<Self, TokenFileError> {
        let mtime = modified(path);
        let token = read_token_file(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            current: Mutex::new((mtime, token)),
        })
    }

    /// The token in force: re-read when the file changed; the last good one if it became unusable
    /// (logged), so a half-written rotation does not lock every agent out.
    fn token(&self) -> String {
        let mtime = modified(&self.path);
        let mut cur = self.current.lock();
        if mtime.is_some() && mtime != cur.0 {
            match read_token_file(&self.path) {
                Ok(t) => *cur = (mtime, t),
                Err(e) => {
                    tracing::warn!(error = %e, "agent token file unusable; keeping the previous token")
                }
            }
        }
        cur.1.clone()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[tonic::async_trait]
impl AgentAuth for SharedToken {
    async fn authenticate(&self, bearer: Option<&str>) -> Result<Identity, AuthError> {
        let Some(given) = bearer else {
            return Err(AuthError::new(
                AuthFailure::MissingToken,
                "this aggregator requires an agent token: send \"authorization: Bearer <token>\" \
                 (echomesh-agent --agent-token-file)",
            ));
        };
        let want = self.token();
        if bool::from(given.as_bytes().ct_eq(want.as_bytes())) {
            Ok(Identity::default())
        } else {
            Err(AuthError::new(
                AuthFailure::BadToken,
                "the agent token does not match the aggregator's --agent-token-file",
            ))
        }
    }

    fn bind(&self, _: &Identity, _: &AgentKey, _: &AgentInfo) -> Result<(), AuthError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempFile(PathBuf);
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn temp(name: &str, content: &str) -> TempFile {
        let p = std::env::temp_dir().join(format!(
            "echomesh-shared-token-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&p, content).expect("write");
        TempFile(p)
    }

    #[tokio::test]
    async fn the_right_token_passes_and_others_are_refused_with_the_reason() {
        let f = temp("match", "right-token\n");
        let auth = SharedToken::open(&f.0).expect("open");
        assert_eq!(
            auth.authenticate(Some("right-token")).await,
            Ok(Identity::default())
        );
        let e = auth
            .authenticate(Some("right-tokeN"))
            .await
            .expect_err("wrong");
        assert_eq!(e.reason, AuthFailure::BadToken);
        assert_eq!(
            e.to_string(),
            "the agent token does not match the aggregator's --agent-token-file"
        );
        let e = auth.authenticate(None).await.expect_err("missing");
        assert_eq!(e.reason, AuthFailure::MissingToken);
        assert_eq!(e.to_status().code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn a_rotated_token_is_picked_up_and_an_unusable_file_keeps_the_last_one() {
        let f = temp("rotate", "old-token");
        let auth = SharedToken::open(&f.0).expect("open");
        // A distinct modification time, whatever the filesystem's timestamp granularity.
        std::fs::write(&f.0, "new-token").expect("write");
        let later = SystemTime::now() + std::time::Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(&f.0)
            .and_then(|h| h.set_modified(later))
            .expect("mtime");
        assert!(auth.authenticate(Some("new-token")).await.is_ok());
        assert!(auth.authenticate(Some("old-token")).await.is_err());
        std::fs::write(&f.0, "").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&f.0)
            .and_then(|h| h.set_modified(later + std::time::Duration::from_secs(10)))
            .expect("mtime");
        assert!(auth.authenticate(Some("new-token")).await.is_ok());
    }

    #[test]
    fn an_empty_or_missing_file_is_refused_at_start() {
        let f = temp("empty", "  \n");
        let e = SharedToken::open(&f.0).expect_err("empty").to_string();
        assert!(e.ends_with("empty (write the token into the file)"), "{e}");
        assert!(SharedToken::open(Path::new("/nonexistent/echomesh-token")).is_err());
    }
}
