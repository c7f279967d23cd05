//! A minimal HTTP/1.1 client for the aggregator's HTTP port (GET only, `Connection: close`).
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response: status code, headers (lower-cased names), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// GETs `path`; bodies in these tests are never chunked (axum sets Content-Length for strings).
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    get_with(addr, path, "*/*").await
}

/// GETs `path` with an `Accept` header.
pub async fn get_with(addr: SocketAddr, path: &str, accept: &str) -> Reply {
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// An aggregator whose edges do not go stale while a test looks at them (a slow browser start on
/// a busy machine must not turn the picture grey): agents are told to report every 10 minutes.
pub async fn stable_server() -> crate::common::Server {
    crate::common::Server::start_with(|c| c.report_interval = std::time::Duration::from_secs(600))
        .await
}

/// An aggregator with agents on nodes a, b, c and d (pod network), where d is cut off: every
/// probe to and from d is lost for three report windows, so d's row and column are DOWN.
pub async fn cluster_with_broken_node() -> (crate::common::Server, Vec<crate::common::SimAgent>) {
    use crate::common::SimAgent;
    let s = stable_server().await;
    let names = ["a", "b", "c", "d"];
    let mut agents = Vec::new();
    for (i, n) in names.iter().enumerate() {
        agents.push(SimAgent::connect(s.channel().await, n, &format!("127.0.0.{}", i + 1)).await);
    }
    for a in &mut agents {
        a.wait_assignment(names.len() - 1).await;
    }
    let empty = echomesh_proto::v1::Histogram::from(&echomesh_proto::Histogram::new());
    for round in 1..=3u64 {
        for (i, a) in agents.iter_mut().enumerate() {
            let to_node: std::collections::HashMap<u64, String> = a
                .assignment
                .as_ref()
                .expect("assigned")
                .targets
                .iter()
                .map(|t| (t.id, t.node.clone()))
                .collect();
            let mut r = a.make_report(100, 0, 150 + 50 * i as u64);
            for t in &mut r.targets {
                if names[i] == "d" || to_node.get(&t.target_id).is_some_and(|n| n == "d") {
                    t.received = 0;
                    t.lost = 100;
                    t.rtt = Some(empty.clone());
                }
            }
            a.send_report(r).await;
            a.wait_ack(round).await;
        }
    }
    (s, agents)
}
