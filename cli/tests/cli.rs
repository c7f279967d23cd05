//! The `echomesh` CLI against a real in-process aggregator fed by simulated agents.

use std::time::Duration;

use clap::Parser as _;
use echomesh_cli::Cli;
use echomesh_proto::Histogram;
use echomesh_testkit::{SOON, SimAgent, TestAggregator, soon};

struct Fixture {
    url: String,
    _agents: Vec<SimAgent>,
    agg: TestAggregator,
}

/// Three agents a, b, c; c loses `c_loss` of 100 probes to everyone.
async fn fixture(c_loss: u64) -> Fixture {
    let agg = TestAggregator::start(|_| {}).await;
    let url = agg.url();
    let mut agents = Vec::new();
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        agents.push(SimAgent::connect(agg.channel().await, n, &format!("127.0.0.{}", i + 1)).await);
    }
    let mut h = Histogram::new();
    for _ in 0..100 {
        h.record(Duration::from_micros(400));
    }
    for (i, a) in agents.iter_mut().enumerate() {
        a.wait_assignment(2).await;
        let lost = if i == 2 { c_loss } else { 0 };
        let r = a.report(100, lost, &h);
        let seq = r.seq;
        a.send_report(r).await;
        a.wait_ack(seq).await;
    }
    Fixture {
        url,
        _agents: agents,
        agg,
    }
}

impl Fixture {
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut argv = vec!["echomesh", "--aggregator", &self.url];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("args");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = echomesh_cli::run(&cli, &mut out, &mut err).await;
        (
            code,
            String::from_utf8(out).expect("utf8"),
            String::from_utf8(err).expect("utf8"),
        )
    }

    async fn stop(self) {
        drop(self._agents);
        self.agg.shutdown().await;
    }
}

#[tokio::test]
async fn status_nodes_edges_edge_matrix_top() {
    let f = fixture(0).await;
    let (code, out, _) = f.run(&["status"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("3 connected"), "{out}");
    assert!(out.contains("6 total: 6 up"), "{out}");

    let (_, out, _) = f.run(&["nodes"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NODE"), "{out}");
    assert_eq!(lines.len(), 4, "{out}");

    let (_, out, _) = f.run(&["edges", "--from", "a"]).await;
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("a/pod"), "{out}");
    let (_, out, _) = f.run(&["-o", "wide", "edges", "--from", "a"]).await;
    assert!(
        out.contains("ADDRESS") && out.contains("127.0.0.2"),
        "{out}"
    );

    let (_, out, _) = f.run(&["-o", "json", "edge", "a", "b"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["state"], "up");
    assert_eq!(v["target_address"], "127.0.0.2");
    assert!(v["history"].is_array(), "{v}");
    let p50 = v["p50_us"].as_f64().expect("p50") / 1000.0;
    assert!((0.3..0.5).contains(&p50), "{p50}");

    let (_, out, _) = f.run(&["matrix", "--metric", "p50"]).await;
    assert!(out.contains("[0] a") && out.contains("[2] c"), "{out}");
    let (_, out, _) = f.run(&["-o", "json", "matrix"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["values"][0][0], serde_json::Value::Null);
    assert_eq!(v["values"][0][1], 0.0);

    let (_, out, _) = f.run(&["top", "-n", "1"]).await;
    assert!(out.contains("(1 of 6 edges shown)"), "{out}");
    f.stop().await;
}

#[tokio::test]
async fn check_exits_zero_when_within_limits() {
    let f = fixture(0).await;
    let (code, out, _) = f.run(&["check", "--max-loss", "1"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK: 6 edges"), "{out}");
    f.stop().await;
}

#[tokio::test]
async fn check_exits_one_and_lists_offenders() {
    let f = fixture(20).await;
    let (code, out, _) = f.run(&["check", "--max-loss", "5"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAIL: 2 of 6 edges"), "{out}");
    assert!(out.contains("c/pod"), "{out}");
    let (code, out, _) = f
        .run(&[
            "-o",
            "json",
            "check",
            "--max-loss",
            "50",
            "--max-p99",
            "0.1",
        ])
        .await;
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        v["violations"].as_array().map(Vec::len),
        Some(6),
        "p99 limit catches all"
    );
    f.stop().await;
}

#[tokio::test]
async fn unreachable_aggregator_exits_two() {
    // Bind then drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_echomesh"))
        .args([
            "--aggregator",
            &format!("http://127.0.0.1:{port}"),
            "--timeout",
            "2s",
            "check",
        ])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the aggregator"), "{err}");
}

#[tokio::test]
async fn bad_url_and_bad_flag_exit_two_with_the_reason() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_echomesh"))
        .args(["--aggregator", "ftp://x", "status"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("aggregator URL \"ftp://x\": must start with http:// (http://HOST:PORT) or unix:// (unix:///path)"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_echomesh"))
        .args(["matrix", "--metric", "bogus"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'bogus'"));
    // Time flags carry their unit; the old bare number is refused, not guessed at.
    for (args, needle) in [
        (
            vec!["--timeout", "5", "status"],
            "\"5\" has no unit: write it as 5ms or 5s",
        ),
        (
            vec!["edges", "--network", "overlay"],
            "unknown network \"overlay\": use pod, host or any",
        ),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_echomesh"))
            .args(&args)
            .output()
            .await
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn server_side_invalid_argument_is_reported() {
    let f = fixture(0).await;
    let (code, _, err) = f.run(&["edges", "--min-loss", "500"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("min_loss_pct must be within 0..=100"), "{err}");
    f.stop().await;
}

/// A `Write` the test can read while the command still runs.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf8")
    }
}

#[tokio::test]
async fn watch_streams_the_snapshot_and_exits_two_when_the_aggregator_goes_away() {
    let f = fixture(0).await;
    let out = Shared::default();
    let (url, mut w) = (f.url.clone(), out.clone());
    let task = tokio::spawn(async move {
        let cli = Cli::try_parse_from([
            "echomesh",
            "--aggregator",
            &url,
            "-o",
            "json",
            "watch",
            "--snapshot",
        ])
        .expect("args");
        let mut err = Vec::new();
        let code = echomesh_cli::run(&cli, &mut w, &mut err).await;
        (code, String::from_utf8(err).expect("utf8"))
    });
    soon("the watch prints the whole snapshot", || async {
        out.text().contains("snapshot_done")
    })
    .await;
    let lines: Vec<serde_json::Value> = out
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 7, "six edges and the end of the snapshot");
    assert!(
        lines[..6]
            .iter()
            .all(|v| v["kind"] == "edge_state" && v["to"] == "up")
    );
    f.stop().await;
    let (code, err) = tokio::time::timeout(SOON, task)
        .await
        .expect("watch ends")
        .expect("task");
    assert_eq!(code, 2);
    assert!(err.contains("shutting down"), "{err}");
}
