//! Names of everything a lab creates.
//!
//! Every namespace of a lab is called `<prefix>-<role>`, so a lab (or its leftovers after a crash)
//! can be found and removed by its prefix alone, and two labs on one machine never collide. The
//! prefix is short and plain so it is safe on a command line and in a file name.

use std::fmt;
use std::str::FromStr;

use rand::Rng as _;

/// Longest prefix accepted (namespace names stay short and readable).
pub const MAX_PREFIX_LEN: usize = 16;

/// A lab's unique name: 1–16 characters, lowercase ASCII letters and digits, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(String);

/// Why a prefix or node name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// The prefix breaks the naming rule.
    #[error(
        "invalid prefix {0:?}: use 1-{MAX_PREFIX_LEN} lowercase letters and digits, starting with a letter"
    )]
    BadPrefix(String),
    /// The node name is neither `nodeN` nor `N`.
    #[error("invalid node {0:?}: name a node as node1, node2, ... (or just its number)")]
    BadNode(String),
}

impl Prefix {
    /// A fresh random prefix: `eml` and four hex digits.
    pub fn random() -> Self {
        let n: u16 = rand::rng().random();
        Prefix(format!("eml{n:04x}"))
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Name of the fabric namespace (the underlay bridge).
    pub fn fabric_ns(&self) -> String {
        format!("{}-fabric", self.0)
    }

    /// Name of node `index`'s host namespace.
    pub fn host_ns(&self, index: u8) -> String {
        format!("{}-{}-host", self.0, NodeName(index))
    }

    /// Name of node `index`'s pod namespace.
    pub fn pod_ns(&self, index: u8) -> String {
        format!("{}-{}-pod", self.0, NodeName(index))
    }

    /// True if the namespace `name` belongs to this lab.
    pub fn owns(&self, name: &str) -> bool {
        name.strip_prefix(self.0.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    }
}

impl FromStr for Prefix {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= MAX_PREFIX_LEN
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if ok {
            Ok(Prefix(s.to_string()))
        } else {
            Err(NameError::BadPrefix(s.to_string()))
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node of the lab, numbered from 1; shown as `node1`, `node2`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(pub u8);

impl FromStr for NodeName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("node").unwrap_or(s);
        match digits.parse::<u8>() {
            Ok(n) if n >= 1 && !digits.starts_with('0') => Ok(NodeName(n)),
            _ => Err(NameError::BadNode(s.to_string())),
        }
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_prefixes_are_valid_and_differ() {
        let a = Prefix::random();
        assert!(a.as_str().parse::<Prefix>().is_ok(), "{a}");
        let distinct: std::collections::HashSet<_> = (0..64).map(|_| Prefix::random()).collect();
        assert!(distinct.len() > 1);
    }

    #[test]
    fn prefix_rule() {
        for good in ["a", "eml1f2e", "lab0123456789abc"] {
            assert!(good.parse::<Prefix>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Abc",
            "a-b",
            "a b",
            "a/b",
            "lab0123456789abcd",
            "é",
        ] {
            let err = bad.parse::<Prefix>().expect_err(bad);
            assert!(
                err.to_string().contains("lowercase letters and digits"),
                "{err}"
            );
        }
    }

    #[test]
    fn namespace_names_and_ownership() {
        let p: Prefix = "eml1".parse().expect("prefix");
        assert_eq!(p.fabric_ns(), "eml1-fabric");
        assert_eq!(p.host_ns(3), "eml1-node3-host");
        assert_eq!(p.pod_ns(12), "eml1-node12-pod");
        assert!(p.owns("eml1-fabric"));
        assert!(p.owns(&p.host_ns(1)));
        // Another lab whose prefix merely starts the same way is not ours.
        assert!(!p.owns("eml12-fabric"));
        assert!(!p.owns("eml1"));
        assert!(!p.owns("xeml1-fabric"));
    }

    #[test]
    fn node_names() {
        assert_eq!("node3".parse::<NodeName>(), Ok(NodeName(3)));
        assert_eq!("3".parse::<NodeName>(), Ok(NodeName(3)));
        assert_eq!(NodeName(7).to_string(), "node7");
        for bad in [
            "node0", "0", "node", "nodeX", "n3", "node03", "-1", "node256",
        ] {
            let err = bad.parse::<NodeName>().expect_err(bad);
            assert!(err.to_string().contains("node1, node2"), "{err}");
        }
    }
}
