//! The aggregator under simulation: the real binary as a child process with the flags a 5,000-node
//! cluster needs, and a shared agent token the simulated agents authenticate with.
//!
//! `--max-agents` and `--max-connections` are raised because their defaults are sized for a
//! cluster of 1,000 nodes; everything else (debounce, thresholds, budget) is the default unless
//! the run names it, so the figures are the defaults' figures.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// The running aggregator.
pub(crate) struct Aggregator {
    /// The process (killed when dropped).
    pub(crate) child: tokio::process::Child,
    /// Its PID, for `/proc` readings.
    pub(crate) pid: u32,
    /// Its gRPC URL.
    pub(crate) url: String,
    /// Its HTTP address (`/metrics`).
    pub(crate) http: SocketAddr,
    /// `Bearer <token>`.
    pub(crate) authorization: String,
    /// The directory holding the token file (removed on drop).
    dir: PathBuf,
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the aggregator is started with.
pub(crate) struct Flags<'a> {
    /// `full-mesh` or `budget`.
    pub(crate) pinglist: &'a str,
    /// `--coverage-period`.
    pub(crate) coverage_period: Duration,
    /// Sessions it must hold.
    pub(crate) agents: usize,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `bin` (default: `echomesh-aggregator` next to this binary) and waits until it listens.
pub(crate) async fn start(bin: Option<&Path>, flags: &Flags<'_>) -> anyhow::Result<Aggregator> {
    let bin = match bin {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("echomesh-aggregator"),
    };
    let dir = std::env::temp_dir().join(format!("echomesh-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let token: String = {
        use std::io::Read as _;
        let mut b = [0u8; 24];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        b.iter().map(|x| format!("{x:02x}")).collect()
    };
    let token_file = dir.join("agent-token");
    std::fs::write(&token_file, &token)?;
    let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    // Room for every session plus the misbehaving ones and readers.
    let max_agents = (flags.agents + 64).to_string();
    let max_conns = (flags.agents / 16 + 256).to_string();
    let child = tokio::process::Command::new(&bin)
        .args(["--grpc-listen", &grpc.to_string()])
        .args(["--http-listen", &http.to_string()])
        .args(["--pinglist", flags.pinglist])
        .args([
            "--coverage-period",
            &format!("{}s", flags.coverage_period.as_secs()),
        ])
        .args(["--max-agents", &max_agents])
        .args(["--max-connections", &max_conns])
        .args(["--agent-token-file", &token_file.display().to_string()])
        // Errors only: a restart wave is 500 "session replaced" warnings, which are expected here.
        .env("ECHOMESH_LOG", "error")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let pid = child.id().context("server pid")?;
    let agg = Aggregator {
        child,
        pid,
        url: format!("http://{grpc}"),
        http,
        authorization: format!("Bearer {token}"),
        dir,
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(grpc).await.is_ok() {
            return Ok(agg);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the aggregator did not listen on {grpc}")
}
