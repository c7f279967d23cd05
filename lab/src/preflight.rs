//! Checks made before anything is created, each failing with one sentence that says what to do.
//!
//! A lab half-built because the user was not root, or because a binary was missing, is worse
//! than no lab: these checks run first, and their errors map to exit code 2.

use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::family::IpFamily;
use crate::naming::Prefix;
use crate::state::LabDir;
use crate::topology::namespaces_of;

/// The binaries a full lab runs, with the package that builds each.
pub const ECHOMESH_BINARIES: [(&str, &str); 3] = [
    ("echomesh-aggregator", "echomesh-aggregator"),
    ("echomesh-agent", "echomesh-agent"),
    ("echomesh", "echomesh-cli"),
];

/// A precondition of the lab is not met.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreflightError {
    /// Not root.
    #[error(
        "echomesh-lab must run as root because it creates network namespaces; run it with sudo"
    )]
    NotRoot,
    /// `ip netns` does not work.
    #[error(
        "network namespaces are not available here (`ip netns list` failed: {0}); echomesh-lab needs iproute2 and a kernel with network namespaces"
    )]
    NoNetns(String),
    /// Namespaces or a lab directory with this prefix exist.
    #[error(
        "prefix {prefix} is already in use ({what}); remove that lab with `echomesh-lab down --prefix {prefix}`"
    )]
    PrefixInUse {
        /// The prefix.
        prefix: String,
        /// What was found.
        what: String,
    },
    /// Binaries not found.
    #[error(
        "missing {names} in {dir}; build {them} with `cargo build --release {packages}` and run target/release/echomesh-lab, or pass --bin-dir DIR"
    )]
    MissingBinaries {
        /// Binary names, comma-separated.
        names: String,
        /// Where we looked.
        dir: String,
        /// "it" or "them".
        them: String,
        /// `-p pkg` list.
        packages: String,
    },
    /// The lab wants IPv6 and the kernel has none.
    #[error(
        "--ip-family {0} needs IPv6, but this kernel has it disabled (/proc/sys/net/ipv6 is missing); boot without ipv6.disable=1 or use --ip-family ipv4"
    )]
    NoIpv6(IpFamily),
}

/// Fails unless the effective user is root.
pub fn check_root() -> Result<(), PreflightError> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(PreflightError::NotRoot)
    }
}

/// Fails unless `ip netns` works.
pub fn check_netns() -> Result<(), PreflightError> {
    if !Path::new("/proc/self/ns/net").exists() {
        return Err(PreflightError::NoNetns(
            "/proc/self/ns/net does not exist".into(),
        ));
    }
    Cmd::ip(None, ["netns", "list"])
        .run()
        .map(drop)
        .map_err(|e| PreflightError::NoNetns(e.to_string()))
}

/// Root and namespaces: what every command that changes the system needs.
pub fn check_system() -> Result<(), PreflightError> {
    check_root()?;
    check_netns()
}

/// Fails if `family` has IPv6 and the kernel does not (`kernel_has_ipv6`: whether
/// `/proc/sys/net/ipv6` exists, passed in so the rule is testable).
pub fn check_ipv6(family: IpFamily, kernel_has_ipv6: bool) -> Result<(), PreflightError> {
    if family.has_v6() && !kernel_has_ipv6 {
        return Err(PreflightError::NoIpv6(family));
    }
    Ok(())
}

/// True if the kernel has IPv6 (it can be compiled out or disabled at boot).
pub fn kernel_has_ipv6() -> bool {
    Path::new("/proc/sys/net/ipv6").exists()
}

/// Fails if lab `prefix` has namespaces or a directory already.
pub fn check_prefix_free(prefix: &Prefix, dir: &LabDir) -> Result<(), PreflightError> {
    let in_use = |what: String| PreflightError::PrefixInUse {
        prefix: prefix.to_string(),
        what,
    };
    let existing = namespaces_of(prefix).map_err(|e| PreflightError::NoNetns(e.to_string()))?;
    if let Some(first) = existing.first() {
        return Err(in_use(format!(
            "{} namespace{} such as {first}",
            existing.len(),
            if existing.len() == 1 { "" } else { "s" }
        )));
    }
    if dir.exists() {
        return Err(in_use(format!("{} exists", dir.path().display())));
    }
    Ok(())
}

/// The directory of the running executable (where `cargo build` puts all the binaries).
pub fn default_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Checks that every binary in `wanted` (name, package) is in `dir`.
pub fn find_binaries(dir: &Path, wanted: &[(&str, &str)]) -> Result<(), PreflightError> {
    let missing: Vec<&(&str, &str)> = wanted
        .iter()
        .filter(|(name, _)| !dir.join(name).is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
    let mut packages: Vec<String> = missing.iter().map(|(_, p)| format!("-p {p}")).collect();
    packages.dedup();
    Err(PreflightError::MissingBinaries {
        names: names.join(", "),
        dir: dir.display().to_string(),
        them: if names.len() == 1 { "it" } else { "them" }.into(),
        packages: packages.join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_how_to_build_them() {
        let dir = std::env::temp_dir().join(format!("echomesh-lab-nobin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("echomesh-agent"), "").expect("touch");
        let err = find_binaries(&dir, &ECHOMESH_BINARIES).expect_err("missing");
        assert_eq!(
            err.to_string(),
            format!(
                "missing echomesh-aggregator, echomesh in {}; build them with `cargo build --release -p echomesh-aggregator -p echomesh-cli` and run target/release/echomesh-lab, or pass --bin-dir DIR",
                dir.display()
            )
        );
        std::fs::write(dir.join("echomesh-aggregator"), "").expect("touch");
        std::fs::write(dir.join("echomesh"), "").expect("touch");
        assert_eq!(find_binaries(&dir, &ECHOMESH_BINARIES), Ok(()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn messages_are_one_sentence_with_the_fix() {
        assert_eq!(
            PreflightError::NotRoot.to_string(),
            "echomesh-lab must run as root because it creates network namespaces; run it with sudo"
        );
        let e = PreflightError::PrefixInUse {
            prefix: "eml1".into(),
            what: "2 namespaces such as eml1-fabric".into(),
        };
        assert_eq!(
            e.to_string(),
            "prefix eml1 is already in use (2 namespaces such as eml1-fabric); remove that lab with `echomesh-lab down --prefix eml1`"
        );
        assert_eq!(
            check_ipv6(IpFamily::Ipv6, false)
                .expect_err("no ipv6")
                .to_string(),
            "--ip-family ipv6 needs IPv6, but this kernel has it disabled (/proc/sys/net/ipv6 is missing); boot without ipv6.disable=1 or use --ip-family ipv4"
        );
        assert!(check_ipv6(IpFamily::Dual, false).is_err());
        assert_eq!(check_ipv6(IpFamily::Ipv4, false), Ok(()));
        assert_eq!(check_ipv6(IpFamily::Ipv6, true), Ok(()));
    }
}
