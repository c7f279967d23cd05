//! The `echomesh` CLI against a real in-process aggregator fed by simulated agents.

mod support;

use std::time::Duration;

use clap::Parser as _;
use echomesh_cli::Cli;
use echomesh_proto::Histogram;
use echomesh_proto::v1;
use echomesh_testkit::{SimAgent, TestAggregator, soon};

struct Fixture {
    url: String,
    _agents: Vec<SimAgent>,
    agg: TestAggregator,
}

/// 100 round trips of 400 µs.
fn rtt_400us() -> Histogram {
    let mut h = Histogram::new();
    for _ in 0..100 {
        h.record(Duration::from_micros(400));
    }
    h
}

/// Three agents a, b, c; c loses `c_loss` of 100 probes to everyone.
async fn fixture(c_loss: u64) -> Fixture {
    let agg = TestAggregator::start(|_| {}).await;
    let url = agg.url();
    let mut agents = Vec::new();
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        agents.push(SimAgent::connect(agg.channel().await, n, &format!("127.0.0.{}", i + 1)).await);
    }
    let h = rtt_400us();
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
        support::run_cli(&Cli::try_parse_from(argv).expect("args")).await
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

/// Without window limits `check` judges what the aggregator holds now: an edge that is DOWN fails,
/// an edge that is UP passes even if the last minute held some loss (a healed link passes at once).
#[tokio::test]
async fn check_judges_the_current_state_by_default() {
    let f = fixture(100).await;
    let (_, edges, _) = f.run(&["-o", "json", "edges"]).await;
    let v: serde_json::Value = serde_json::from_str(&edges).expect("json");
    let down = v["edges"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["state"] == "down").count())
        .unwrap_or(0);
    assert_eq!(down, 2, "c's two edges lost every probe: {edges}");
    let (_, matrix, _) = f.run(&["matrix"]).await;
    assert_eq!(
        matrix.matches("DOWN").count(),
        2,
        "DOWN cells are marked in words, not only in colour: {matrix}"
    );
    let (code, out, _) = f.run(&["check"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAIL: 2 of 6 edges"), "{out}");

    // The link heals: clean windows bring c's edges back UP while the last minute still holds
    // the lost probes. The current state passes; the one-minute window limit still fails.
    let h = rtt_400us();
    let mut f = f;
    let mut up = false;
    for _ in 0..10 {
        let c = &mut f._agents[2];
        let r = c.report(100, 0, &h);
        let seq = r.seq;
        c.send_report(r).await;
        c.wait_ack(seq).await;
        let (_, edges, _) = f.run(&["-o", "json", "edges", "--from", "c"]).await;
        let v: serde_json::Value = serde_json::from_str(&edges).expect("json");
        if v["edges"]
            .as_array()
            .is_some_and(|a| a.iter().all(|e| e["state"] == "up"))
        {
            up = true;
            break;
        }
    }
    assert!(up, "c's edges came back UP after clean windows");
    let (code, out, _) = f.run(&["check"]).await;
    assert_eq!(
        code, 0,
        "healed edges pass a check of the current state: {out}"
    );
    let (code, out, _) = f.run(&["check", "--max-loss", "1"]).await;
    assert_eq!(code, 1, "the last minute still holds the loss: {out}");
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
    let (code, _, err, _) = run_bin(&[
        "--aggregator",
        &format!("http://127.0.0.1:{port}"),
        "--timeout",
        "2s",
        "check",
    ])
    .await;
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!(
            "cannot reach the aggregator at http://127.0.0.1:{port}: the connection was refused"
        )),
        "{err}"
    );
    assert!(!err.contains("transport error"), "{err}");
}

#[tokio::test]
async fn bad_url_and_bad_flag_exit_two_with_the_reason() {
    let (code, _, err, _) = run_bin(&["--aggregator", "ftp://x", "status"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("aggregator URL \"ftp://x\": must start with http:// (http://HOST:PORT), https:// (https://HOST:PORT) or unix:// (unix:///path)"));
    let (code, _, err, _) = run_bin(&["matrix", "--metric", "bogus"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid value 'bogus'"));
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
        let (code, _, err, _) = run_bin(&args).await;
        assert_eq!(code, Some(2), "{args:?}: {err}");
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

async fn run_bin(args: &[&str]) -> (Option<i32>, String, String, Duration) {
    let t0 = std::time::Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_echomesh"))
        .args(args)
        .output()
        .await
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t0.elapsed(),
    )
}

fn hello(node: &str, net: v1::Network, addrs: &[&str]) -> v1::AgentMessage {
    let mut h = echomesh_testkit::sim::hello(node, net, addrs[0]);
    h.addresses = addrs.iter().map(|a| (*a).to_string()).collect();
    v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::Hello(h)),
    }
}

/// Two nodes with a pod and a host agent each; b's pod network is dual-stack and b's host agent
/// loses every probe (all its edges DOWN while it stays connected).
async fn two_networks() -> Fixture {
    let agg = TestAggregator::start(|_| {}).await;
    let url = agg.url();
    let specs: [(&str, v1::Network, &[&str], usize); 4] = [
        ("a", v1::Network::Pod, &["127.0.0.1"], 4),
        ("a", v1::Network::Host, &["127.0.1.1"], 4),
        ("b", v1::Network::Pod, &["127.0.0.2", "::2"], 3),
        ("b", v1::Network::Host, &["127.0.1.2"], 4),
    ];
    let mut agents = Vec::new();
    for (node, net, addrs, _) in &specs {
        agents.push(
            SimAgent::open(agg.channel().await, hello(node, *net, addrs))
                .await
                .expect("session"),
        );
    }
    for (a, (_, _, _, n)) in agents.iter_mut().zip(specs) {
        a.wait_assignment(n).await;
    }
    for (i, a) in agents.iter_mut().enumerate() {
        // b/host: everything lost, twice, so its edges go DOWN.
        let rounds = if i == 3 { 2 } else { 1 };
        for _ in 0..rounds {
            let r = if i == 3 {
                a.make_report(100, 100, 400)
            } else {
                a.make_report(100, 0, 400)
            };
            let seq = r.seq;
            a.send_report(r).await;
            a.wait_ack(seq).await;
        }
    }
    Fixture {
        url,
        _agents: agents,
        agg,
    }
}

#[tokio::test]
async fn names_with_network_and_address_reach_host_and_dual_stack_edges() {
    let f = two_networks().await;
    // Host-network edges by name.
    let (code, out, err) = f.run(&["edge", "a/host", "b/host"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("source     a/host"), "{out}");
    assert!(out.contains("target     b/host 127.0.1.2"), "{out}");
    assert!(
        out.contains("state      DOWN") || out.contains("state      UP"),
        "{out}"
    );
    // An address picks one edge of a dual-stack target.
    for addr in ["127.0.0.2", "::2"] {
        let (code, out, err) = f
            .run(&["-o", "json", "edge", "a/pod", &format!("b/pod/{addr}")])
            .await;
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["target_address"], addr);
        assert_eq!(v["target_network"], "pod");
    }
    // edges --from / --to take the same names.
    let (code, out, _) = f.run(&["edges", "--from", "a/host"]).await;
    assert_eq!(code, 0);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows.iter().all(|r| r.starts_with("a/host ")), "{out}");
    let (_, out, _) = f.run(&["edges", "--to", "b/pod/::2"]).await;
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "a/pod, a/host and b/host probe ::2: {out}");
    assert!(rows.iter().all(|r| r.contains(" ::2 ")), "{out}");
    // The two edges of a dual-stack pair differ by their address.
    let (_, out, _) = f.run(&["edges", "--from", "a/pod", "--to", "b/pod"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("SOURCE  TARGET  ADDRESS"), "{out}");
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].contains("127.0.0.2") && lines[2].contains("::2"),
        "{out}"
    );
    f.stop().await;
}

#[tokio::test]
async fn unknown_names_exit_three_and_list_the_known_agents() {
    let f = two_networks().await;
    for (args, needle) in [
        (
            vec!["edges", "--from", "nosuch"],
            "no agent on node \"nosuch\"",
        ),
        (
            vec!["edges", "--to", "b/host/10.9.9.9"],
            "no target \"b/host/10.9.9.9\"",
        ),
        (vec!["edge", "nosuch", "b"], "no agent on node \"nosuch\""),
        (
            vec!["edge", "a/pod", "zz/host"],
            "no edge from a/pod to \"zz/host\"",
        ),
    ] {
        let (code, out, err) = f.run(&args).await;
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: no empty table: {out}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            err.contains("known agents: a/pod, a/host, b/pod, b/host"),
            "{args:?}: {err}"
        );
    }
    // A malformed name is a bad argument (2), with the reason.
    let (code, _, err) = f.run(&["edge", "a/overlay", "b"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown network \"overlay\": use pod, host or any"),
        "{err}"
    );
    // Control characters in a name come back escaped.
    let (code, _, err) = f.run(&["edges", "--from", "x\u{1b}[2J"]).await;
    assert_eq!(code, 3);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    f.stop().await;
}

#[tokio::test]
async fn nodes_tell_the_agent_from_its_edges() {
    let f = two_networks().await;
    let (code, out, _) = f.run(&["nodes"]).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NODE  NETWORK  AGENT      HEALTH  EDGES(UP/ALL)"),
        "{out}"
    );
    let b_host = lines
        .iter()
        .find(|l| l.starts_with("b     host"))
        .expect("b/host row");
    let cells: Vec<&str> = b_host.split_whitespace().collect();
    assert_eq!(&cells[2..6], ["connected", "DOWN", "0/4", "4"], "{out}");
    let a_pod = lines
        .iter()
        .find(|l| l.starts_with("a     pod"))
        .expect("a/pod");
    assert!(a_pod.contains("connected  UP      4/4"), "{out}");
    let (_, out, _) = f.run(&["-o", "json", "nodes"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let b = v
        .as_array()
        .expect("array")
        .iter()
        .find(|n| n["name"] == "b" && n["network"] == "host")
        .expect("b/host");
    assert_eq!(b["agent"], "connected");
    assert_eq!(b["connected"], true);
    assert_eq!(b["health"], "down");
    assert_eq!(b["edges_up"], 0);
    f.stop().await;
}

#[tokio::test]
async fn nodes_say_which_agent_refused_its_assignment_and_why_escaped() {
    let mut f = fixture(0).await;
    let generation = f._agents[0]
        .assignment
        .as_ref()
        .expect("assigned")
        .generation;
    f._agents[0]
        .send(v1::AgentMessage {
            msg: Some(v1::agent_message::Msg::AssignmentRejected(
                v1::AssignmentRejected {
                    generation,
                    reason: "target 198.51.100.7 is outside --allow-cidr\u{1b}]0;x\u{7}".into(),
                },
            )),
        })
        .await;
    let mut out = String::new();
    for _ in 0..100 {
        out = f.run(&["nodes"]).await.1;
        if out.contains("refused") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        out.contains(
            "a/pod refused its latest assignment: target 198.51.100.7 is outside \
             --allow-cidr\\u{1b}]0;x\\u{7}"
        ),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'), "{out:?}");
    let (_, json, _) = f.run(&["-o", "json", "nodes"]).await;
    assert!(
        json.contains("\"assignment_rejected\": \"target 198.51.100.7"),
        "{json}"
    );
    f.stop().await;
}

#[tokio::test]
async fn check_needs_connected_agents_and_counts_what_is_missing() {
    let empty = TestAggregator::start(|_| {}).await;
    let (code, out, err, _) = run_bin(&["--aggregator", &empty.url(), "check"]).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("cannot check: no agent is connected to the aggregator at"),
        "{err}"
    );
    empty.shutdown().await;

    let mut f = fixture(0).await;
    let (code, out, _) = f
        .run(&["check", "--min-agents", "3", "--expect-nodes", "3"])
        .await;
    assert_eq!(code, 0, "{out}");
    drop(f._agents.pop());
    soon("c's agent is gone", || async {
        f.run(&["status"]).await.1.contains("2 connected")
    })
    .await;
    let (code, out, _) = f.run(&["check", "--min-agents", "3"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL: 2 of at least 3 agents connected; gone: c/pod"),
        "{out}"
    );
    let (code, out, _) = f.run(&["-o", "json", "check", "--expect-nodes", "3"]).await;
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(
        v["missing"][0],
        "2 of 3 expected nodes have a connected agent; known without one: c"
    );
    f.stop().await;
}

#[tokio::test]
async fn the_http_port_and_a_silent_server_are_named_as_such() {
    let agg = TestAggregator::start(|_| {}).await;
    let (code, _, err, _) = run_bin(&[
        "--aggregator",
        &format!("http://{}", agg.http_addr),
        "status",
    ])
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("this looks like the aggregator's HTTP port; the gRPC port is"),
        "{err}"
    );
    agg.shutdown().await;

    // A server that accepts and never answers: the whole command ends at --timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let (code, _, err, took) = run_bin(&[
        "--aggregator",
        &format!("http://{addr}"),
        "--timeout",
        "1s",
        "edges",
    ])
    .await;
    hold.abort();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[tokio::test]
async fn a_closed_stdout_ends_quietly_with_zero() {
    let f = fixture(0).await;
    // A reader that has gone away before the first line (as `head` after enough lines).
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_echomesh"))
        .args(["--aggregator", &f.url, "edges"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().await.expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");

    struct Closed;
    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let cli = Cli::try_parse_from(["echomesh", "--aggregator", &f.url, "nodes"]).expect("args");
    let mut err = Vec::new();
    assert_eq!(echomesh_cli::run(&cli, &mut Closed, &mut err).await, 0);
    assert!(err.is_empty());
    f.stop().await;
}

/// `diagnose` exits 0 with one line on a healthy cluster and 1 with a table of culprits, whose
/// names are escaped like every other table's.
#[tokio::test]
async fn diagnose_says_healthy_or_names_the_culprits() {
    let f = fixture(0).await;
    let (code, out, err) = f.run(&["diagnose"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "healthy: 3 nodes, 6 edges UP");
    f.stop().await;

    let f = fixture(100).await;
    let (code, out, err) = f.run(&["diagnose"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("KIND"), "{out}");
    assert!(
        out.contains("link") && out.contains("c -> a") && out.contains("c -> b"),
        "{out}"
    );
    assert!(
        out.contains("2 culprits explain 2 of 2 failing edges"),
        "{out}"
    );
    let (code, out, _) = f.run(&["-o", "json", "diagnose", "--network", "pod"]).await;
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["healthy"], false);
    assert_eq!(v["culprits"][0]["kind"], "link");
    assert_eq!(v["culprits"][0]["node"], "c");
    assert_eq!(v["unexplained_edges"], 0);
    let (code, _, err) = f.run(&["diagnose", "--limit", "20000"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("limit must be at most 10000"), "{err}");
    f.stop().await;
}

#[tokio::test]
async fn help_documents_names_and_exit_codes() {
    let (code, out, _, _) = run_bin(&["--help"]).await;
    assert_eq!(code, Some(0));
    for needle in [
        "Exit codes:",
        "0  fine",
        "1  check: edges outside the limits",
        "diagnose: culprits found",
        "2  the aggregator is unreachable, refused the request or timed out; a bad flag;",
        "3  the named node, agent or edge does not exist",
        "node/network/address",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
}

fn spawn_watch(url: &str, args: &[&str]) -> (Shared, Shared, tokio::task::JoinHandle<i32>) {
    let (out, err) = (Shared::default(), Shared::default());
    let mut argv = vec!["echomesh".to_string(), "--aggregator".into(), url.into()];
    argv.extend(args.iter().map(|a| (*a).to_string()));
    let (mut o, mut e) = (out.clone(), err.clone());
    let task = tokio::spawn(async move {
        let cli = Cli::try_parse_from(argv).expect("args");
        echomesh_cli::run(&cli, &mut o, &mut e).await
    });
    (out, err, task)
}

#[tokio::test]
async fn watch_streams_json_and_reconnects_when_the_aggregator_restarts() {
    let f = fixture(0).await;
    let grpc = f.agg.grpc_addr;
    let (out, err, task) = spawn_watch(&f.url, &["-o", "json", "watch", "--snapshot"]);
    soon("the watch prints the whole snapshot", || async {
        out.text().contains("snapshot_done")
    })
    .await;
    let lines: Vec<serde_json::Value> = out
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 7, "six edges and the end of the snapshot");
    for v in &lines[..6] {
        assert_eq!(v["kind"], "edge_state");
        assert_eq!(v["to"], "up");
        assert_eq!(v["target_network"], "pod");
        assert!(
            v["at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
            "{v}"
        );
    }
    assert!(
        err.text()
            .contains(&format!("connected to {}; waiting for changes", f.url))
    );
    f.stop().await;
    soon("the watch says it lost the aggregator", || async {
        err.text().contains("reconnecting in")
    })
    .await;
    assert!(!task.is_finished(), "the watch keeps going");
    let again = TestAggregator::start(|c| c.grpc_listen = grpc).await;
    soon("the watch reconnects", || async {
        err.text().contains("reconnected to")
    })
    .await;
    task.abort();
    again.shutdown().await;
}

#[tokio::test]
async fn watch_table_has_a_header_times_and_names() {
    let f = fixture(0).await;
    let (out, _err, task) = spawn_watch(&f.url, &["watch", "--snapshot"]);
    soon("the snapshot is printed", || async {
        out.text().contains("snapshot_done")
    })
    .await;
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("SOURCE -> TARGET ADDRESS"),
        "{text}"
    );
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    assert!(first[0].ends_with('Z') && first[0].contains('T'), "{text}");
    assert_eq!(&first[1..3], ["edge", "a/pod"], "{text}");
    assert_eq!(&first[4..6], ["b/pod", "127.0.0.2"], "{text}");
    assert_eq!(&first[6..], ["UP", "->", "UP"], "{text}");
    task.abort();
    f.stop().await;
}
