//! Turning what the user typed (addresses, CIDRs, a file of them) into a target list.
//!
//! CIDRs are expanded to every address they hold, network and broadcast addresses included (the
//! kernel refuses broadcast sends, which then count as send errors, visibly), with a hard cap so a
//! typo like `/8` is an error instead of sixteen million probes.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

/// Most addresses one CIDR may expand to (a /16 for IPv4, a /112 for IPv6).
pub const MAX_CIDR_ADDRESSES: u128 = 65_536;
/// Most targets in one run.
pub const MAX_TARGETS: usize = 262_144;

/// A target list the user gave that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Neither an address nor a CIDR.
    #[error("invalid target {0:?}: expected an IPv4/IPv6 address or a CIDR such as 10.0.0.0/24")]
    Invalid(String),
    /// A CIDR with too many addresses.
    #[error(
        "CIDR {cidr} holds {count} addresses; at most 65536 can be probed per CIDR (a /16 for IPv4, a /112 for IPv6)"
    )]
    TooLarge {
        /// The CIDR as given.
        cidr: String,
        /// How many addresses it holds.
        count: u128,
    },
    /// Nothing to probe.
    #[error("no targets: give addresses or CIDRs on the command line, or a file with -f")]
    Empty,
    /// More targets than one run may hold.
    #[error("{0} targets is too many; at most {MAX_TARGETS} per run")]
    TooMany(usize),
    /// The target file could not be read.
    #[error("cannot read target file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A bad line in the target file.
    #[error("{}:{line}: {source}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        #[source]
        source: Box<TargetError>,
    },
}

/// Expands one address or CIDR.
pub fn parse_target(s: &str) -> Result<Vec<IpAddr>, TargetError> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let net: IpNet = s.parse().map_err(|_| TargetError::Invalid(s.to_string()))?;
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    let count = if bits >= 128 {
        u128::MAX
    } else {
        1u128 << bits
    };
    if count > MAX_CIDR_ADDRESSES {
        return Err(TargetError::TooLarge {
            cidr: s.to_string(),
            count,
        });
    }
    let net = net.trunc();
    Ok(match net {
        IpNet::V4(n) => {
            let base = u32::from(n.network());
            (0..count as u32)
                .map(|i| IpAddr::from((base + i).to_be_bytes()))
                .collect()
        }
        IpNet::V6(n) => {
            let base = u128::from(n.network());
            (0..count)
                .map(|i| IpAddr::from((base + i).to_be_bytes()))
                .collect()
        }
    })
}

/// Reads a target file: one address or CIDR per line; blank lines and `#` comments are skipped.
pub fn read_file(path: &Path) -> Result<Vec<IpAddr>, TargetError> {
    let text = std::fs::read_to_string(path).map_err(|source| TargetError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let addrs = parse_target(line).map_err(|e| TargetError::Line {
            path: path.to_path_buf(),
            line: n + 1,
            source: Box::new(e),
        })?;
        out.extend(addrs);
    }
    Ok(out)
}

/// The run's targets from arguments and an optional file, in order, duplicates removed.
pub fn collect(args: &[String], file: Option<&Path>) -> Result<Vec<IpAddr>, TargetError> {
    let mut all = Vec::new();
    if let Some(f) = file {
        all.extend(read_file(f)?);
    }
    for a in args {
        all.extend(parse_target(a)?);
        if all.len() > MAX_TARGETS {
            return Err(TargetError::TooMany(all.len()));
        }
    }
    let mut seen = HashSet::with_capacity(all.len());
    all.retain(|a| seen.insert(*a));
    match all.len() {
        0 => Err(TargetError::Empty),
        n if n > MAX_TARGETS => Err(TargetError::TooMany(n)),
        _ => Ok(all),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_cidrs() {
        assert_eq!(
            parse_target("127.0.0.1").expect("ok"),
            vec!["127.0.0.1".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(parse_target("::1").expect("ok").len(), 1);
        let v = parse_target("10.1.2.3/30").expect("ok");
        assert_eq!(v.len(), 4);
        assert_eq!(v[0], "10.1.2.0".parse::<IpAddr>().expect("ip"));
        assert_eq!(parse_target("10.250.0.0/16").expect("ok").len(), 65_536);
        assert_eq!(parse_target("fd00::/112").expect("ok").len(), 65_536);
    }

    #[test]
    fn invalid_and_too_large_say_why() {
        let e = parse_target("10.0.0.300").expect_err("bad");
        assert!(
            e.to_string().contains("invalid target \"10.0.0.300\""),
            "{e}"
        );
        let e = parse_target("10.0.0.0/15").expect_err("big");
        assert!(e.to_string().contains("holds 131072 addresses"), "{e}");
        let e = parse_target("::/0").expect_err("huge");
        assert!(e.to_string().contains("at most 65536"), "{e}");
        assert!(matches!(collect(&[], None), Err(TargetError::Empty)));
    }

    #[test]
    fn files_dedupe_and_report_lines() {
        let dir = std::env::temp_dir().join(format!("echomesh-targets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("good");
        std::fs::write(
            &good,
            "# peers\n127.0.0.1\n\n127.0.0.2 # second\n127.0.0.1\n",
        )
        .expect("write");
        let v = collect(&["127.0.0.3".into(), "127.0.0.2".into()], Some(&good)).expect("ok");
        assert_eq!(v.len(), 3);
        let bad = dir.join("bad");
        std::fs::write(&bad, "127.0.0.1\nnot-an-ip\n").expect("write");
        let e = collect(&[], Some(&bad)).expect_err("bad line");
        assert!(e.to_string().ends_with("bad:2: invalid target \"not-an-ip\": expected an IPv4/IPv6 address or a CIDR such as 10.0.0.0/24"), "{e}");
        let e = collect(&[], Some(&dir.join("missing"))).expect_err("missing");
        assert!(e.to_string().starts_with("cannot read target file"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
