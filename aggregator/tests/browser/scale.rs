//! A 5,000-node cluster for the page, and Chromium runs that time the page on the wall clock.
//!
//! Why the graph is filled in process and not by 5,000 simulated gRPC sessions: the page only
//! reads the graph, and filling it directly takes a second or two where 5,000 sessions would
//! take the machine; the aggregator still serves the page and its JSON API over real HTTP.
//!
//! Why the console and not `--dump-dom`: `--dump-dom` needs `--virtual-time-budget` to wait for
//! the page's requests, and virtual time stops the page's clock while a request is pending, so
//! `performance.now()` would leave the network and the server out. Without it, the page's clock
//! is the wall clock; the page prints one `echomesh-selftest {...}` line to the console and
//! Chromium's `--enable-logging=stderr` hands that to us.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use echomesh_testkit::TestAggregator;
use echomesh_testkit::aggregator::mesh::{GraphFill, Mesh};

/// Nodes per zone, as in the scale simulation (zones of 500 nodes).
pub(crate) const ZONE_NODES: usize = 500;
/// The node that is cut off: every probe to and from it is lost.
pub(crate) const CUT: usize = 1234;
/// The node that loses 5 % of its outbound probes.
pub(crate) const LOSSY: usize = 3777;

pub(crate) use echomesh_testkit::aggregator::mesh::node_name as name;

pub(crate) fn zone(i: usize) -> String {
    format!("zone-{:02}", i / ZONE_NODES)
}

/// Node `i`'s targets: `per_agent / 2` peers of its own zone and `per_agent / 2` spread over
/// the other zones (like the budget policy's same-zone preference); every node is probed by as
/// many peers as it probes.
fn peers(i: usize, nodes: usize, per_agent: usize) -> Vec<usize> {
    let zones = nodes.div_ceil(ZONE_NODES).max(1);
    let (zi, li) = (i / ZONE_NODES, i % ZONE_NODES);
    let in_zone = ZONE_NODES.min(nodes - zi * ZONE_NODES);
    let mut v = Vec::with_capacity(per_agent);
    for d in 1..=per_agent / 2 {
        v.push(zi * ZONE_NODES + (li + d) % in_zone);
    }
    for d in 1..=per_agent - per_agent / 2 {
        let z = if zones > 1 {
            (zi + 1 + (d - 1) % (zones - 1)) % zones
        } else {
            zi
        };
        let size = ZONE_NODES.min(nodes - z * ZONE_NODES);
        v.push(z * ZONE_NODES + (li + 7 * d) % size);
    }
    v.retain(|&j| j != i);
    v.sort_unstable();
    v.dedup();
    v
}

/// Fills `s`'s graph with `nodes` pod-network agents in zones of [`ZONE_NODES`], each probing
/// `per_agent` peers, after three report windows: node [`CUT`] is cut off (its edges both ways
/// DOWN) and node [`LOSSY`] loses 5 % of what it sends (DEGRADED). Returns the edge count.
pub(crate) fn fill(s: &TestAggregator, nodes: usize, per_agent: usize) -> usize {
    let zones: BTreeMap<Arc<str>, Arc<str>> = (0..nodes)
        .map(|i| (Arc::from(name(i)), Arc::from(zone(i))))
        .collect();
    s.graph.set_node_zones(zones);
    Mesh {
        nodes,
        peers: &|i| peers(i, nodes, per_agent),
        lost: &|i, j| {
            if i == CUT || j == CUT {
                100
            } else if i == LOSSY {
                5
            } else {
                0
            }
        },
        sent: 100,
        rtt_us: &[180, 200, 220, 240, 260, 300, 350, 500, 900, 2_000],
        reports: 3,
        report_interval: Duration::from_secs(600),
    }
    .fill(&GraphFill(&s.graph))
}

/// Opens `url` in headless Chromium on the wall clock (no virtual time) and returns the JSON
/// the page printed as `echomesh-selftest {...}`, then stops the browser. Panics when it does not
/// print it within `deadline`.
pub(crate) fn console_selftest(
    bin: &Path,
    profile: &Path,
    args: &[&str],
    url: &str,
    deadline: Duration,
) -> serde_json::Value {
    const MARK: &str = "\"echomesh-selftest ";
    let mut child = Command::new(bin)
        .args(super::HEADLESS)
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let stderr = child.stderr.take().expect("chromium stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut log = Vec::new();
    let found = loop {
        let left = deadline.saturating_sub(start.elapsed());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => {
                if let Some(at) = line.find(MARK) {
                    let rest = &line[at + MARK.len()..];
                    let end = rest.rfind("\", source:").unwrap_or(rest.len());
                    break Some(rest[..end].to_string());
                }
                log.push(line);
            }
            Err(_) => break None,
        }
    };
    stop(&mut child);
    let _ = reader.join();
    let Some(json) = found else {
        panic!(
            "the page printed no self-test within {deadline:?}; chromium said:\n{}",
            log.join("\n")
        );
    };
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("self-test JSON ({e}): {json}"))
}

/// Stops a Chromium we started: SIGTERM (it closes its helper processes itself), SIGKILL when it
/// has not exited within 10 s.
fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
