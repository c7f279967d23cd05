//! Agent-chosen text (Hello version and pod, a rejection reason) is checked before it is kept.
//!
//! Why here and not only in the renderers: these strings reach terminals (`echomesh nodes`),
//! the page, logs and `/metrics` labels; refusing control characters at the door and bounding the
//! length keeps every one of them safe, and the renderers escape again anyway.

/// True when `s` is at most `max` bytes and has no control characters (ESC, CR, LF, DEL, C1
/// controls and the like).
#[must_use]
pub fn printable(s: &str, max: usize) -> bool {
    s.len() <= max && !s.chars().any(char::is_control)
}

/// `s` with every control character escaped (`\u{1b}`) and cut to about `max` bytes, for text
/// that is kept even when it is not printable (a rejection reason says something useful anyway).
#[must_use]
pub fn escaped(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        if out.len() >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_characters_are_refused_or_escaped() {
        assert!(printable("0.1.0", 64));
        assert!(!printable("0.1\u{1b}]0;pwned\u{7}", 64));
        assert!(!printable("a\r\nb", 64));
        assert!(!printable(&"x".repeat(65), 64));
        assert_eq!(escaped("a\u{1b}[2Jb", 64), "a\\u{1b}[2Jb");
        assert_eq!(escaped(&"y".repeat(10), 4), "yyyy…");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
        ))]
        #[test]
        fn escaped_text_is_printable_and_bounded(s in any::<String>(), max in 0usize..300) {
            let e = escaped(&s, max);
            prop_assert!(!e.chars().any(char::is_control));
            prop_assert!(e.len() <= max + 16);
        }
    }
}
