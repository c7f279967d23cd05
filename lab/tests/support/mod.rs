//! Shared helpers of the lab's integration tests: root detection, finding (or building) the
//! binaries, starting a network-only lab, and probing from inside a namespace.
#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use echomesh_lab::family::IpFamily;
use echomesh_lab::lab::{Lab, LabConfig};
use echomesh_lab::naming::Prefix;
use echomesh_testkit::root;
use serde::Deserialize;

/// True if these tests can create namespaces; otherwise says why the test is skipped (and
/// fails it in CI, where a skip would hide a broken runner).
pub fn can_run(test: &str) -> bool {
    if !root::is_root() {
        root::skip(test, "needs root (to create network namespaces)");
        return false;
    }
    if Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        root::skip(test, "`ip netns` is not available on this machine");
        return false;
    }
    true
}

/// Heavy measurements (loss, delay) run one at a time so they do not disturb each other.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// `echomesh-lab` as built for this test run.
pub fn lab_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_echomesh-lab"))
}

/// The cargo output directory of this test run (target/debug or target/release).
pub fn target_dir() -> PathBuf {
    lab_exe()
        .parent()
        .map(Path::to_path_buf)
        .expect("binary has a parent dir")
}

/// Makes sure the binaries `bins` (name, package) exist in [`target_dir`], building them with
/// the same cargo and profile if not (a `cargo test --workspace` has built them already).
pub fn try_ensure_built(bins: &[(&str, &str)]) -> Result<PathBuf, String> {
    static BUILD: Mutex<()> = Mutex::new(());
    let _g = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let dir = target_dir();
    let missing: Vec<&(&str, &str)> = bins
        .iter()
        .filter(|(b, _)| !dir.join(b).is_file())
        .collect();
    if !missing.is_empty() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build");
        for (bin, pkg) in &missing {
            cmd.args(["-p", pkg, "--bin", bin]);
        }
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("`cargo build` of {missing:?} failed"));
        }
    }
    Ok(dir)
}

/// [`try_ensure_built`], failing the test if the build fails.
pub fn ensure_built(bins: &[(&str, &str)]) -> PathBuf {
    try_ensure_built(bins).unwrap_or_else(|e| panic!("{e}"))
}

/// The agent binary (for `probe`).
pub fn agent_exe() -> PathBuf {
    ensure_built(&[("echomesh-agent", "echomesh-agent")]).join("echomesh-agent")
}

/// A unique prefix for a test lab.
pub fn test_prefix() -> Prefix {
    // `emt` + 4 hex: distinct from the demo's default `eml....` so `down` of leftovers
    // never races a running test.
    let p = Prefix::random();
    format!("emt{}", &p.as_str()[3..]).parse().expect("prefix")
}

/// A network-only IPv4 lab of `nodes` nodes.
pub fn network_lab(nodes: u32) -> Lab {
    network_lab_of(nodes, IpFamily::Ipv4)
}

/// A network-only lab of `nodes` nodes whose hosts and pods have addresses of `family`.
pub fn network_lab_of(nodes: u32, family: IpFamily) -> Lab {
    let mut cfg = LabConfig::new(nodes);
    cfg.prefix = Some(test_prefix());
    cfg.echomesh = false;
    cfg.family = family;
    cfg.lab_exe = lab_exe();
    cfg.bin_dir = target_dir();
    Lab::start(cfg).expect("lab starts")
}

/// One target's result from `echomesh-agent probe -o json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProbeResult {
    pub target: String,
    pub sent: u64,
    pub received: u64,
    pub loss_pct: f64,
    pub rtt_us: Option<Rtt>,
}

/// RTT summary in microseconds.
#[derive(Debug, Clone, Deserialize)]
pub struct Rtt {
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
}

impl ProbeResult {
    /// The median round trip in milliseconds; NaN when nothing answered.
    pub fn p50_ms(&self) -> f64 {
        self.rtt_us
            .as_ref()
            .map(|x| x.p50 / 1000.0)
            .unwrap_or(f64::NAN)
    }
}

/// Probes `targets` from namespace `ns`: `count` probes each, `interval_ms` apart.
pub fn probe(ns: &str, targets: &[IpAddr], count: u32, interval_ms: u32) -> Vec<ProbeResult> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(agent_exe())
        .args(["probe", "-o", "json", "-t", "500ms"])
        .args(["-c", &count.to_string(), "-i", &format!("{interval_ms}ms")])
        .args(targets.iter().map(ToString::to_string))
        .output()
        .expect("run echomesh-agent probe");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "probe output is not JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Probes `targets` from namespace `ns` (20 probes each, 5 ms apart) and asserts that each
/// answered at least 19.
pub fn assert_answered(ns: &str, targets: &[IpAddr]) {
    for r in probe(ns, targets, 20, 5) {
        assert!(
            r.received >= 19,
            "{ns} -> {}: {}/{} answered",
            r.target,
            r.received,
            r.sent
        );
    }
}

/// Polls `f` every 100 ms until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Namespaces whose name starts with `prefix-`.
pub fn namespaces_with(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect()
}

/// True if process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// True if the root namespace has an nftables table of the lab (it never should: faults live
/// in the lab's namespaces).
pub fn root_has_lab_table() -> bool {
    Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(echomesh_lab::fault::LOSS_TABLE))
        .unwrap_or(false)
}
