//! The `echomesh-lab` command line: bad input is refused with one clear sentence and exit 2,
//! faults work from another process, Ctrl-C/SIGTERM cleans up, and `down` removes what a
//! killed lab left behind. Needs root (except the not-root check); skips otherwise.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use support::*;

fn lab(args: &[&str]) -> Output {
    Command::new(lab_exe())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run echomesh-lab")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `echomesh-lab ARGS`, asserting it succeeded.
fn lab_ok(args: &[&str]) -> Output {
    let out = lab(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    out
}

/// Where a running lab keeps its state (`state.json`, the relays' pid files).
fn run_dir(prefix: &str) -> PathBuf {
    Path::new("/run/echomesh-lab").join(prefix)
}

/// A `demo --network-only` in the background, killed (SIGKILL) if the test fails early.
struct Demo {
    child: Child,
    prefix: String,
}

impl Demo {
    fn start(prefix: &str) -> Demo {
        Self::start_with(prefix, &[])
    }

    /// Like [`Demo::start`], with more `demo` flags.
    fn start_with(prefix: &str, extra: &[&str]) -> Demo {
        let child = Command::new(lab_exe())
            .args(["demo", "--network-only", "--nodes", "2", "--refresh", "0s"])
            .args(["--prefix", prefix])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn demo");
        let demo = Demo {
            child,
            prefix: prefix.to_string(),
        };
        let state = run_dir(prefix).join("state.json");
        // state.json says `"ready": true` once the build has finished.
        assert!(
            eventually(Duration::from_secs(30), || {
                std::fs::read_to_string(&state)
                    .map(|s| s.contains("\"ready\": true"))
                    .unwrap_or(false)
            }),
            "demo {prefix} did not come up"
        );
        assert_eq!(namespaces_with(prefix).len(), 5);
        demo
    }

    /// The pid of the delay relay of `node`, from the lab's pid file.
    fn relay_pid(&self, node: &str) -> u32 {
        std::fs::read_to_string(run_dir(&self.prefix).join(format!("relay-{node}.pid")))
            .expect("relay pid")
            .trim()
            .parse()
            .expect("pid")
    }

    /// True once the demo process exits within `limit`.
    fn exits_within(&mut self, limit: Duration) -> bool {
        eventually(limit, || matches!(self.child.try_wait(), Ok(Some(_))))
    }

    fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(self.child.id() as i32).expect("pid");
        kill_process(pid, sig).expect("kill");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = lab(&["down", "--prefix", &self.prefix]);
    }
}

#[test]
fn not_root_is_refused_in_one_sentence() {
    let is_root = echomesh_testkit::root::is_root();
    let mut cmd = if is_root {
        let setpriv = echomesh_testkit::require_command!("/usr/bin/setpriv");
        let mut c = Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(lab_exe());
        c
    } else {
        Command::new(lab_exe())
    };
    let out = cmd
        .args(["demo", "--network-only"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    if is_root && matches!(out.status.code(), Some(126 | 127)) {
        eprintln!(
            "SKIP not_root_is_refused_in_one_sentence: user nobody cannot execute {} ({})",
            lab_exe().display(),
            stderr(&out).trim()
        );
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "echomesh-lab: echomesh-lab must run as root because it creates network namespaces; run it with sudo"
    );
}

#[test]
fn missing_binaries_are_named_with_the_build_command() {
    if !can_run("missing_binaries_are_named_with_the_build_command") {
        return;
    }
    let out = lab(&["demo", "--bin-dir", "/nonexistent/echomesh-bin"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "missing echomesh-aggregator, echomesh-agent, echomesh in /nonexistent/echomesh-bin"
        ) && err.contains(
            "cargo build --release -p echomesh-aggregator -p echomesh-agent -p echomesh-cli"
        ),
        "{err}"
    );
}

#[test]
fn bad_arguments_exit_2() {
    if !can_run("bad_arguments_exit_2") {
        return;
    }
    for (args, needle) in [
        (
            vec!["demo", "--nodes", "1", "--network-only"],
            "--nodes must be between 2 and 32",
        ),
        (vec!["demo", "--prefix", "Bad-Prefix"], "invalid prefix"),
        (
            vec!["demo", "--ip-family", "v6", "--network-only"],
            "the IP family must be ipv4, dual or ipv6, not \"v6\"",
        ),
        (
            vec!["demo", "--ipv6", "--ip-family", "ipv6", "--network-only"],
            "--ipv6 means --ip-family dual and cannot be combined with --ip-family ipv6",
        ),
        (vec!["cut", "nodeX"], "invalid node"),
        (
            vec!["loss", "node1", "150", "--prefix", "emtnone"],
            "loss must be a percentage",
        ),
        (
            vec!["delay", "node1", "1.5", "--prefix", "emtnone"],
            "\"1.5\" has no unit: write it as 1.5ms or 1.5s",
        ),
        (
            vec!["delay", "node1", "11s", "--prefix", "emtnone"],
            "delay must be a duration from 0ms to 10s, like 2ms or 1.5ms: \"11s\" is longer than 10s",
        ),
        (
            vec!["heal", "node1", "--prefix", "emtnone"],
            "no running lab with prefix emtnone",
        ),
    ] {
        let out = lab(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn faults_from_another_process_then_sigterm_cleans_up() {
    if !can_run("faults_from_another_process_then_sigterm_cleans_up") {
        return;
    }
    let prefix = test_prefix().to_string();
    let mut demo = Demo::start(&prefix);

    // A second lab with the same prefix is refused, naming the cleanup command.
    let out = lab(&["demo", "--network-only", "--prefix", &prefix]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "prefix {prefix} is already in use (5 namespaces such as {prefix}-fabric); remove that lab with `echomesh-lab down --prefix {prefix}`"
        )),
        "{}",
        stderr(&out)
    );

    let list = lab(&["list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains(&format!("{prefix}\t2 nodes\tnetwork only")),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );

    let out = lab_ok(&["delay", "node1", "3ms", "--prefix", &prefix]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{prefix} node1: +3ms on every packet it sends")
    );
    lab_ok(&["loss", "node2", "20", "--prefix", &prefix]);
    lab_ok(&["cut", "2", "--prefix", &prefix]);
    let out = lab(&["loss", "node3", "20", "--prefix", &prefix]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("this lab has no node3 (it has node1 to node2)"),
        "{}",
        stderr(&out)
    );

    let relay = demo.relay_pid("node1");
    assert!(alive(relay));

    demo.signal(Signal::TERM);
    assert!(
        demo.exits_within(Duration::from_secs(30)),
        "demo did not exit on SIGTERM"
    );
    assert_eq!(
        demo.child.try_wait().ok().flatten().and_then(|s| s.code()),
        Some(0)
    );
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
    assert!(!alive(relay), "relay survived the demo");
    assert!(!run_dir(&prefix).exists());
}

#[test]
fn down_removes_what_a_killed_lab_left() {
    if !can_run("down_removes_what_a_killed_lab_left") {
        return;
    }
    let prefix = test_prefix().to_string();
    let mut demo = Demo::start(&prefix);
    lab_ok(&["delay", "node2", "1ms", "--prefix", &prefix]);
    let relay = demo.relay_pid("node2");

    demo.signal(Signal::KILL);
    let _ = demo.child.wait();
    assert_eq!(namespaces_with(&prefix).len(), 5, "SIGKILL cannot clean up");
    assert!(alive(relay));

    let out = lab_ok(&["down", "--prefix", &prefix]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("removed {prefix} (5 namespaces, 0 other processes)")
    );
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
    assert!(!alive(relay), "relay survived down");
    assert!(!run_dir(&prefix).exists());
    // Idempotent.
    lab_ok(&["down", "--prefix", &prefix]);
}

#[test]
fn down_stops_a_live_demo_through_its_owner() {
    if !can_run("down_stops_a_live_demo_through_its_owner") {
        return;
    }
    let prefix = test_prefix().to_string();
    let mut demo = Demo::start(&prefix);
    lab_ok(&["loss", "node1", "5", "--prefix", &prefix]);
    lab_ok(&["down", "--prefix", &prefix]);
    // The owner got SIGTERM and cleaned up itself, in order.
    assert!(
        demo.exits_within(Duration::from_secs(5)),
        "demo still running after down"
    );
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
    assert!(!run_dir(&prefix).exists());
    assert!(!root_has_lab_table());
}

#[test]
fn ip_family_and_the_ipv6_alias_reach_the_lab() {
    if !can_run("ip_family_and_the_ipv6_alias_reach_the_lab") {
        return;
    }
    for (flags, family, has_v4) in [
        (&["--ip-family", "ipv6"][..], "ipv6", false),
        (&["--ipv6"][..], "dual", true),
    ] {
        let prefix = test_prefix().to_string();
        let mut demo = Demo::start_with(&prefix, flags);
        let state =
            std::fs::read_to_string(run_dir(&prefix).join("state.json")).expect("state.json");
        assert!(
            state.contains(&format!("\"family\": \"{family}\"")),
            "{flags:?}: {state}"
        );
        let addrs = Command::new("ip")
            .args([
                "-n",
                &format!("{prefix}-node1-pod"),
                "-o",
                "addr",
                "show",
                "eth0",
            ])
            .output()
            .expect("ip addr");
        let addrs = String::from_utf8_lossy(&addrs.stdout);
        assert!(addrs.contains("fd00:10:244:1::2/64"), "{flags:?}: {addrs}");
        assert_eq!(
            addrs.contains("10.244.1.2/24"),
            has_v4,
            "{flags:?}: {addrs}"
        );
        demo.signal(Signal::TERM);
        assert!(
            demo.exits_within(Duration::from_secs(30)),
            "demo did not exit on SIGTERM"
        );
        assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
    }
}

/// The full demo prints the commands the README shows (an `export ECHOMESH_AGGREGATOR=` line,
/// then plain `echomesh matrix`), and the exported URL really answers.
#[test]
fn demo_banner_gives_the_readme_commands_and_they_work() {
    if !can_run("demo_banner_gives_the_readme_commands_and_they_work") {
        return;
    }
    let bin = ensure_built(&[
        ("echomesh-aggregator", "echomesh-aggregator"),
        ("echomesh-agent", "echomesh-agent"),
        ("echomesh", "echomesh-cli"),
    ]);
    let prefix = test_prefix().to_string();
    let child = Command::new(lab_exe())
        .args([
            "demo",
            "--nodes",
            "2",
            "--refresh",
            "0s",
            "--prefix",
            &prefix,
        ])
        .arg("--bin-dir")
        .arg(&bin)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    // Dropping `demo` kills the process and removes the lab, also when an assertion fails.
    let mut demo = Demo {
        child,
        prefix: prefix.clone(),
    };
    let stdout = demo.child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !banner
        .iter()
        .any(|l: &String| l.starts_with("Ctrl-C stops the lab"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => banner.push(line),
            Err(_) => break,
        }
    }
    let text = banner.join("\n");
    let url = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("export ECHOMESH_AGGREGATOR="))
        .unwrap_or_else(|| panic!("no export line in the banner:\n{text}"))
        .to_string();
    let cli = bin.join("echomesh").display().to_string();
    assert!(
        banner.iter().any(|l| l.trim() == format!("{cli} matrix")),
        "{text}"
    );
    let status = Command::new(bin.join("echomesh"))
        .arg("status")
        .env("ECHOMESH_AGGREGATOR", &url)
        .output()
        .expect("run echomesh status");
    assert!(status.status.success(), "{}", stderr(&status));
    demo.signal(Signal::TERM);
    assert!(
        demo.exits_within(Duration::from_secs(20)),
        "demo did not stop on SIGTERM"
    );
    drop(demo);
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
}
