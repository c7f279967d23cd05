//! The aggregator under test, run as a child process.
//!
//! A separate process so its CPU time and resident memory are measured apart from the load
//! generator's own, through `/proc`, exactly as an operator would see them.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use echomesh_runtime::procfs::{self, Proc};

/// The aggregator under test, a child process.
pub(crate) struct Server {
    /// The process (killed when dropped).
    pub(crate) child: tokio::process::Child,
    /// Its PID, for `/proc` readings.
    pub(crate) pid: u32,
    /// Its gRPC URL.
    pub(crate) url: String,
}

/// Starts `server_bin` (default: `echomesh-aggregator` next to this binary) on a free loopback
/// port and waits until it listens.
pub(crate) async fn start_server(
    server_bin: Option<&Path>,
    secure: Option<&crate::secure::Secure>,
) -> anyhow::Result<Server> {
    let bin = match server_bin {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("echomesh-aggregator"),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let child = tokio::process::Command::new(&bin)
        .args([
            "--grpc-listen",
            &addr.to_string(),
            "--http-listen",
            "127.0.0.1:0",
            "--assign-debounce",
            "2s",
            "--report-interval",
            "1s",
            "--agent-ttl",
            "1h",
            // The sessions wait for the whole mesh: the figures are the full mesh's load.
            "--pinglist",
            "full-mesh",
        ])
        .args(
            secure
                .map(crate::secure::Secure::server_args)
                .unwrap_or_default(),
        )
        .env("ECHOMESH_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let pid = child.id().context("server pid")?;
    let scheme = if secure.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(Server { child, pid, url });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("server did not listen on {addr}")
}

/// User plus system CPU seconds of `p`.
pub(crate) fn cpu_seconds(p: Proc) -> anyhow::Result<f64> {
    procfs::stat(p)
        .map(|s| s.cpu_seconds)
        .with_context(|| format!("cannot read the CPU time in {p}/stat"))
}

/// Resident set size of `p`, bytes.
pub(crate) fn rss_bytes(p: Proc) -> anyhow::Result<u64> {
    procfs::resident_bytes(p).with_context(|| format!("cannot read VmRSS in {p}/status"))
}
