//! ListEdges paging: offset tokens and page limits.
//!
//! Why opaque offset tokens with a prefix: clients must pass back what they were given, and a
//! token that is not ours is refused with a reason instead of being read as some offset.

use tonic::Status;

/// Default page size of ListEdges.
pub const DEFAULT_PAGE: u32 = 1000;
/// Largest page of ListEdges.
pub const MAX_PAGE: u32 = 10_000;
const TOKEN_PREFIX: &str = "off:";

/// Parses a ListEdges page token into an offset.
pub fn parse_page_token(t: &str) -> Result<usize, Status> {
    if t.is_empty() {
        return Ok(0);
    }
    t.strip_prefix(TOKEN_PREFIX)
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "page_token {:?} is not a token returned by ListEdges",
                t.chars().take(40).collect::<String>()
            ))
        })
}

/// The token of the page after the one ending at `next`, empty when nothing follows.
#[must_use]
pub fn next_page_token(next: usize, total: usize) -> String {
    if next < total {
        format!("{TOKEN_PREFIX}{next}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens() {
        assert_eq!(parse_page_token("").ok(), Some(0));
        assert_eq!(parse_page_token("off:20").ok(), Some(20));
        let e = parse_page_token("garbage").expect_err("bad");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("not a token"), "{}", e.message());
    }
}
