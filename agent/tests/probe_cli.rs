//! `echomesh-agent probe` as a user runs it: real binary, real raw sockets, loopback only, plus a
//! namespace lab of its own for unreachable targets. Tests that need root say so and skip.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use echomesh_testkit::{require_command, require_root};

const BIN: &str = env!("CARGO_BIN_EXE_echomesh-agent");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run echomesh-agent")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["probe", "10.0.0.300"], "invalid target \"10.0.0.300\""),
        (
            &["probe", "10.0.0.0/8"],
            "holds 16777216 addresses; at most 65536",
        ),
        (&["probe"], "no targets"),
        (
            &["probe", "-f", "/nonexistent/echomesh-targets"],
            "cannot read target file /nonexistent/echomesh-targets",
        ),
        (
            &["probe", "-s", "8", "127.0.0.1"],
            "payload size 8 is out of range",
        ),
        (&["probe", "-c", "0", "127.0.0.1"], "--count <COUNT>"),
        (&["probe", "-o", "xml", "127.0.0.1"], "invalid value 'xml'"),
        (
            &["probe", "-i", "0s", "127.0.0.1"],
            "\"0s\" must be greater than zero",
        ),
        (
            &["probe", "-t", "0ms", "127.0.0.1"],
            "\"0ms\" must be greater than zero",
        ),
    ];
    for (args, want) in cases {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(want),
            "{args:?}: stderr was {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
}

#[test]
fn time_flags_need_a_unit() {
    // A bare number is refused: guessing milliseconds or seconds would be wrong half the time.
    for flag in ["-i", "--interval", "-t", "--timeout"] {
        let o = run(&["probe", flag, "1000", "127.0.0.1"]);
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("\"1000\" has no unit: write it as 1000ms or 1000s"),
            "{flag}: stderr was {}",
            stderr(&o)
        );
    }
    let o = run(&[
        "run",
        "--max-backoff",
        "500",
        "--aggregator",
        "http://127.0.0.1:1",
        "--node",
        "n1",
        "--network",
        "pod",
        "--address",
        "127.0.0.1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("\"500\" has no unit"), "{}", stderr(&o));
}

#[test]
fn loopback_v4_and_v6_answer_every_probe() {
    require_root!();
    let o = run(&[
        "probe",
        "-c",
        "5",
        "-i",
        "20ms",
        "-t",
        "1s",
        "-o",
        "json",
        "127.0.0.1",
        "127.0.0.2",
        "::1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    let rows = v.as_array().expect("array");
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert_eq!(r["sent"], 5, "{r}");
        assert_eq!(r["received"], 5, "{r}");
        assert_eq!(r["loss_pct"], 0.0, "{r}");
        let rtt = &r["rtt_us"];
        let (min, p50, max) = (
            rtt["min"].as_f64(),
            rtt["p50"].as_f64(),
            rtt["max"].as_f64(),
        );
        let (min, p50, max) = (min.expect("min"), p50.expect("p50"), max.expect("max"));
        assert!(min > 0.0 && min <= p50 && p50 <= max, "{r}");
        assert!(
            max < 1_000_000.0,
            "an RTT over the 1 s timeout cannot be a sample: {r}"
        );
    }
    assert!(
        stderr(&o).contains("summary: targets=3 sent=15 received=15"),
        "{}",
        stderr(&o)
    );
}

/// The value of `key=` in the stderr summary line.
fn summary_field(o: &Output, key: &str) -> Option<u64> {
    let err = stderr(o);
    let line = err.lines().find(|l| l.starts_with("summary:"))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

#[test]
fn every_packet_of_a_sendmmsg_batch_gets_its_own_kernel_stamp() {
    require_root!();
    // 64 loopback addresses every 20 ms: each wake-up finds tens of probes due, sent as one batch.
    let targets: Vec<String> = (1..=64).map(|i| format!("127.0.1.{i}")).collect();
    let mut args = vec!["probe", "-c", "4", "-i", "20ms", "-t", "1s", "-o", "json"];
    args.extend(targets.iter().map(String::as_str));
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary_field(&o, "received"), Some(256), "{}", stderr(&o));
    let (kernel, user) = (
        summary_field(&o, "kernel_tx_stamps"),
        summary_field(&o, "user_send_stamps"),
    );
    // Kernels before 6.13 refuse per-packet stamp keys: then every probe is its own sendmsg
    // with its own user-space stamp, and nothing is batched.
    assert!(
        kernel == Some(256) || user == Some(256),
        "every probe needs a send time of its own: {}",
        stderr(&o)
    );
    assert_eq!(
        summary_field(&o, "batch_unstamped"),
        Some(0),
        "{}",
        stderr(&o)
    );
    let calls = summary_field(&o, "send_calls").expect("send_calls in the summary");
    if kernel == Some(256) {
        assert!(
            calls <= 256 / 4,
            "{calls} send calls for 256 probes: not batched"
        );
    } else {
        assert_eq!(
            calls, 256,
            "without kernel stamps every probe is its own sendmsg"
        );
    }
    for r in json(&o).as_array().expect("array") {
        assert_eq!(r["received"], 4, "{r}");
        let max = r["rtt_us"]["max"].as_f64().expect("max");
        assert!(max < 1_000_000.0, "{r}");
    }
}

#[test]
fn table_output_is_the_default() {
    require_root!();
    let o = run(&["probe", "-c", "2", "-i", "10ms", "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("TARGET"), "{out}");
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("127.0.0.1")),
        "{out}"
    );
}

/// Runs the agent as user nobody through `setpriv` with `extra` capability flags.
fn setpriv(setpriv: &Path, extra: &[&str], args: &[&str]) -> Output {
    let mut cmd = Command::new(setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(extra)
        .arg(BIN)
        .args(args);
    cmd.output().expect("run setpriv")
}

#[test]
fn without_cap_net_raw_one_line_error_and_exit_2() {
    require_root!();
    let setpriv_bin = require_command!("/usr/bin/setpriv");
    let o = setpriv(
        &setpriv_bin,
        &["--inh-caps=-all", "--bounding-set=-all"],
        &["probe", "-c", "1", "127.0.0.1"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unprivileged_user_with_only_cap_net_raw_can_probe() {
    require_root!();
    let caps = [
        "--inh-caps=+net_raw",
        "--ambient-caps=+net_raw",
        "--bounding-set=-all,+net_raw",
    ];
    let setpriv_bin = require_command!("/usr/bin/setpriv");
    let o = setpriv(
        &setpriv_bin,
        &caps,
        &["probe", "-c", "2", "-i", "10ms", "-o", "json", "127.0.0.1"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)[0]["received"], 2);
}

/// A network namespace this test created; deleted on drop, also when the test fails.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "emp{}-{}{}",
            std::process::id(),
            tag,
            N.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Self(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.0.as_str()];
        full.extend_from_slice(args);
        ip(&full);
    }

    fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, cmd])
            .args(args)
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn ip(args: &[&str]) {
    let o = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (apt-get install iproute2)");
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn unreachable_targets_count_as_loss_and_icmp_errors_and_end_on_time() {
    require_root!();
    // src --veth-- router; the router has an `unreachable` route for 10.99.0.0/24 and answers
    // probes to it with ICMP host unreachable, quoting our request.
    let src = Netns::new("s");
    let router = Netns::new("r");
    let (a, b) = (format!("{}a", &src.0[..8]), format!("{}b", &src.0[..8]));
    ip(&[
        "link", "add", &a, "netns", &src.0, "type", "veth", "peer", "name", &b, "netns", &router.0,
    ]);
    src.ip(&["addr", "add", "10.98.0.1/30", "dev", &a]);
    router.ip(&["addr", "add", "10.98.0.2/30", "dev", &b]);
    src.ip(&["link", "set", &a, "up"]);
    router.ip(&["link", "set", &b, "up"]);
    src.ip(&["route", "add", "10.99.0.0/24", "via", "10.98.0.2"]);
    router.ip(&["route", "add", "unreachable", "10.99.0.0/24"]);
    for knob in ["net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0"] {
        let o = router.exec("sysctl", &["-qw", knob]);
        assert!(o.status.success(), "sysctl {knob}: {}", stderr(&o));
    }

    let started = Instant::now();
    let o = src.exec(
        BIN,
        &[
            "probe",
            "-c",
            "5",
            "-i",
            "50ms",
            "-t",
            "300ms",
            "-o",
            "json",
            "10.99.0.5",
            "10.98.0.2",
        ],
    );
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json(&o);
    let (dead, alive) = (&v[0], &v[1]);
    assert_eq!(dead["target"], "10.99.0.5");
    assert_eq!(
        (dead["sent"].as_u64(), dead["received"].as_u64()),
        (Some(5), Some(0)),
        "{dead}"
    );
    assert_eq!(dead["loss_pct"], 100.0);
    assert!(
        dead["errors"].as_u64().is_some_and(|e| e >= 1),
        "ICMP errors counted: {dead}"
    );
    assert!(dead["rtt_us"].is_null());
    assert_eq!(
        alive["received"], 5,
        "the reachable router still answers: {alive}"
    );
    // 5 probes 50 ms apart + a 300 ms timeout: well under a second; generous bound for a busy box.
    assert!(took < Duration::from_secs(10), "run took {took:?}");
}
