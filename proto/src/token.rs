//! The agent token file, as both sides read it: the agent sends its content as a bearer token, the
//! aggregator (outside Kubernetes) compares what it receives with its own copy.
//!
//! Why one reader for both: a trailing newline or a stray byte must mean the same on both ends, or
//! an operator gets "bad token" with two files that look identical. The content is trimmed of
//! surrounding whitespace and must be 1..=16 KiB of visible ASCII (a gRPC metadata value; a
//! projected ServiceAccount token is about 1 KiB). The file is re-read on every use, so a rotated
//! token is picked up without a restart.

use std::path::{Path, PathBuf};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A token file that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The content is not a usable token.
    #[error("token file {path}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// Reads and checks the token in `path`.
///
/// # Errors
/// The file is unreadable, empty, larger than [`MAX_TOKEN_BYTES`], or holds anything but visible
/// ASCII after trimming.
pub fn read_token_file(path: &Path) -> Result<String, TokenFileError> {
    let invalid = |why: String| TokenFileError::Invalid {
        path: path.to_path_buf(),
        why,
    };
    // Read at most one byte past the limit, so a huge file is refused without loading it.
    let mut raw = Vec::new();
    let f = std::fs::File::open(path).map_err(|source| TokenFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(f, (MAX_TOKEN_BYTES + 4096) as u64),
        &mut raw,
    )
    .map_err(|source| TokenFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&raw)
        .map_err(|_| invalid("not text (a token is visible ASCII)".into()))?
        .trim();
    check_token(text).map_err(invalid)?;
    Ok(text.to_string())
}

/// Checks a token's content (already trimmed).
///
/// # Errors
/// Why the token is unusable.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("empty (write the token into the file)".into());
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(format!("longer than {MAX_TOKEN_BYTES} bytes"));
    }
    if let Some(c) = token.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "holds {c:?}; a token is visible ASCII without spaces"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn file(content: &[u8]) -> (PathBuf, Gone) {
        let p = std::env::temp_dir().join(format!(
            "echomesh-token-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::write(&p, content).expect("write");
        (p.clone(), Gone(p))
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    proptest::proptest! {
        /// Whatever the file holds, reading it never panics, and what is accepted is always a
        /// usable metadata value: 1..=16 KiB of visible ASCII.
        #[test]
        fn any_content_is_read_or_refused(content in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let (p, _g) = file(&content);
            if let Ok(t) = read_token_file(&p) {
                proptest::prop_assert!(!t.is_empty() && t.len() <= MAX_TOKEN_BYTES);
                proptest::prop_assert!(t.bytes().all(|b| b.is_ascii_graphic()));
            }
        }
    }

    #[test]
    fn a_token_is_trimmed_visible_ascii() {
        let (p, _g) = file(b"  s3cret-token\n");
        assert_eq!(read_token_file(&p).expect("ok"), "s3cret-token");
    }

    #[test]
    fn unusable_files_are_refused_with_the_reason() {
        for (content, why) in [
            (&b"\n"[..], "empty (write the token into the file)"),
            (
                b"two words",
                "holds ' '; a token is visible ASCII without spaces",
            ),
            (b"\xff\xfe", "not text (a token is visible ASCII)"),
        ] {
            let (p, _g) = file(content);
            let e = read_token_file(&p).expect_err("refused").to_string();
            assert_eq!(e, format!("token file {}: {why}", p.display()));
        }
        let (p, _g) = file(&vec![b'a'; MAX_TOKEN_BYTES + 1]);
        assert!(
            read_token_file(&p)
                .expect_err("long")
                .to_string()
                .ends_with("longer than 16384 bytes")
        );
        let missing = Path::new("/nonexistent/echomesh/token");
        assert!(
            read_token_file(missing)
                .expect_err("missing")
                .to_string()
                .starts_with("token file /nonexistent/echomesh/token: ")
        );
    }
}
