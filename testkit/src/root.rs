//! Tests that need root or an external tool: skip on a developer machine, fail in CI.
//!
//! Raw sockets and network namespaces need root, and a few tests need a tool (Chromium,
//! `setpriv`, `ip`). Locally such a test says why it did not run and returns, so `cargo test` as
//! a normal user stays green. In CI (the `CI` environment variable is set) the same situation is a
//! broken runner, not a reason to skip: CI runs as root with the tools installed, and a silently
//! skipped test would count as passed. So there it panics.

use std::path::{Path, PathBuf};

/// True when the effective user is root.
#[must_use]
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// True when running in CI (the `CI` environment variable is set).
#[must_use]
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The first of `names` that is an executable on `PATH` (or, when it contains a `/`, that path).
#[must_use]
pub fn find_command(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        if name.contains('/') {
            return Some(PathBuf::from(name)).filter(|p| is_executable(p));
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The running test's full name, `crate::path::test`: the test harness names each test's thread
/// after the test's path inside its crate; `module_path` (the caller's) supplies the crate.
#[must_use]
pub fn test_name(module_path: &str) -> String {
    let krate = module_path.split("::").next().unwrap_or(module_path);
    match std::thread::current().name() {
        Some(t) if t != "main" => format!("{krate}::{t}"),
        _ => module_path.to_string(),
    }
}

/// Reports that `test` cannot run here because of `reason`: prints `SKIP <test>: <reason>` to
/// stderr, or panics when [`in_ci`], where a skip would hide a broken runner.
///
/// # Panics
///
/// In CI, always.
pub fn skip(test: &str, reason: &str) {
    if in_ci() {
        panic!(
            "{test}: {reason}; CI runs as root with every tool installed, so this test must not be skipped"
        );
    }
    eprintln!("SKIP {test}: {reason}");
}

/// Skips the calling test (returns from it) with a formatted reason; panics instead in CI.
#[macro_export]
macro_rules! skip {
    ($($reason:tt)+) => {{
        $crate::root::skip(
            &$crate::root::test_name(::core::module_path!()),
            &::std::format!($($reason)+),
        );
        return;
    }};
}

/// Returns from the calling test unless it runs as root (`SKIP <test>: needs root (<reason>)`);
/// panics instead in CI.
#[macro_export]
macro_rules! require_root {
    () => {
        $crate::require_root!("raw sockets / network namespaces")
    };
    ($reason:expr) => {
        if !$crate::root::is_root() {
            $crate::skip!("needs root ({})", $reason);
        }
    };
}

/// Evaluates to the path of the first of the given commands found on `PATH`, or returns from the
/// calling test (`SKIP <test>: needs <cmd>`); panics instead in CI.
#[macro_export]
macro_rules! require_command {
    ($($name:expr),+ $(,)?) => {
        match $crate::root::find_command(&[$($name),+]) {
            ::core::option::Option::Some(path) => path,
            ::core::option::Option::None => {
                $crate::skip!("needs `{}` (not found on PATH)", [$($name),+].join("` or `"))
            }
        }
    };
}

#[cfg(test)]
mod tests;
