//! `echomesh-lab down`: remove a lab, or the leftovers of one, by its prefix.
//!
//! Works whether the owning `echomesh-lab` is still running (it is asked to stop first, so it
//! cleans up in order), crashed, or was killed: processes are found by namespace membership and
//! by the PIDs recorded in `state.json` (each checked before it is signalled), namespaces by
//! their prefix. Nothing outside the prefix is touched.

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::naming::Prefix;
use crate::procs::running;
use crate::state::{self, LabDir};
use crate::topology::{delete_namespaces, namespaces_of};

/// What `down` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DownReport {
    /// Labs (prefixes) handled.
    pub labs: Vec<String>,
    /// Namespaces deleted.
    pub namespaces: usize,
    /// Processes outside the namespaces stopped (owner, aggregator).
    pub processes: usize,
}

/// True if `pid` runs a program whose file name starts with `exe_prefix` and whose command
/// line mentions `needle` (so a recycled PID is never signalled).
fn is_ours(pid: u32, exe_prefix: &str, needle: &str) -> bool {
    let exe_ok = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n.starts_with(exe_prefix));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    exe_ok && (needle.is_empty() || cmdline.contains(needle))
}

fn term_and_wait(pid: u32, gone: impl Fn() -> bool, grace: Duration) -> bool {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    if kill_process(p, Signal::TERM).is_err() {
        return false;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if gone() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill_process(p, Signal::KILL);
    true
}

/// Removes lab `prefix`: its owner, aggregator, namespaces (with everything in them) and
/// directory.
pub fn down_one(run_dir: &Path, prefix: &Prefix, report: &mut DownReport) {
    let dir = LabDir::new(run_dir, prefix);
    if let Ok(st) = dir.load() {
        let me = std::process::id();
        // A live owner cleans up best (in order); give it time.
        if st.owner_pid != 0 && st.owner_pid != me && is_ours(st.owner_pid, "echomesh-lab", "") {
            let pid = st.owner_pid;
            if term_and_wait(
                pid,
                || !running(pid) && !dir.exists(),
                Duration::from_secs(15),
            ) {
                report.processes += 1;
            }
        }
        if let Some(agg) = &st.aggregator {
            let socket = agg.socket.display().to_string();
            if is_ours(agg.pid, "echomesh-aggregator", &socket) {
                let pid = agg.pid;
                if term_and_wait(pid, || !running(pid), Duration::from_secs(3)) {
                    report.processes += 1;
                }
            }
        }
    }
    match namespaces_of(prefix) {
        Ok(nss) => report.namespaces += delete_namespaces(&nss),
        Err(e) => tracing::warn!(error = %e, "cannot list namespaces"),
    }
    if let Err(e) = dir.remove() {
        tracing::warn!(error = %e, "cannot remove the lab directory");
    }
    report.labs.push(prefix.to_string());
}

/// Prefixes of labs that have namespaces but may have lost their directory (a lab whose
/// directory was removed by hand, or a crash between the two): only random default prefixes
/// (`eml` + 4 hex digits) are considered, since those are certainly made by echomesh-lab.
pub fn orphan_prefixes() -> Vec<Prefix> {
    let Ok(all) = crate::topology::existing_namespaces() else {
        return Vec::new();
    };
    let mut out: Vec<Prefix> = all
        .iter()
        .filter_map(|ns| ns.split_once('-').map(|(p, _)| p))
        .filter(|p| is_default_prefix(p))
        .filter_map(|p| p.parse().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// True for prefixes of the shape [`Prefix::random`] makes.
pub fn is_default_prefix(p: &str) -> bool {
    p.len() == 7
        && p.starts_with("eml")
        && p[3..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// Removes lab `prefix`, or with None every lab under `run_dir` and every orphaned default one.
pub fn down(run_dir: &Path, prefix: Option<&Prefix>) -> DownReport {
    let mut report = DownReport::default();
    let mut targets: Vec<Prefix> = match prefix {
        Some(p) => vec![p.clone()],
        None => {
            let mut v = state::list(run_dir).unwrap_or_default();
            v.extend(orphan_prefixes());
            v
        }
    };
    targets.sort();
    targets.dedup();
    for p in &targets {
        down_one(run_dir, p, &mut report);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefix_shape() {
        assert!(is_default_prefix("eml0a9f"));
        assert!(is_default_prefix(Prefix::random().as_str()));
        for no in [
            "eml", "eml0a9", "eml0a9f0", "emlzzzz", "xml0a9f", "eml0A9F", "emqlab",
        ] {
            assert!(!is_default_prefix(no), "{no}");
        }
    }
}
