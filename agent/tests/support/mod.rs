//! What the agent's integration tests share: the `run` arguments of a test agent, a spawned run
//! loop with its stop switch, and a fake probe engine (`engine`). Each test file sets up its
//! agents the same way, so the set-up lives here once and the files keep only what they test.
#![allow(dead_code, unreachable_pub)]

pub mod engine;

use std::time::Duration;

use echomesh_agent::report::{GuardArgs, RunArgs, RunError};
use echomesh_proto::v1::Network;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Generous: loaded CI machines must not flake.
pub const SOON: Duration = Duration::from_secs(20);

/// How often a condition is polled while waiting.
pub const POLL: Duration = Duration::from_millis(50);

/// A pod-network agent `node` at `addr` reporting to `url`, allowed to probe loopback only, with
/// a 100-report replay buffer and a 200 ms reconnect backoff at most. Tests override the fields
/// they are about with struct update syntax.
pub fn run_args(url: &str, node: &str, addr: &str) -> RunArgs {
    RunArgs {
        aggregator: url.to_string(),
        node: node.into(),
        pod: String::new(),
        zone: String::new(),
        network: Network::Pod,
        addresses: vec![addr.parse().expect("ip")],
        replay_buffer: 100,
        replay_buffer_bytes: 64 << 20,
        max_backoff: Duration::from_millis(200),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        guard: GuardArgs::allowing(&["127.0.0.0/8"]),
        agent_token_file: None,
        tls_ca: None,
    }
}

/// A run loop on its own task, and the switch that stops it.
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), RunError>>,
}

impl Running {
    /// Spawns `run`, handing it the shutdown future it must stop on.
    pub fn spawn<F>(run: impl FnOnce(Shutdown) -> F) -> Self
    where
        F: Future<Output = Result<(), RunError>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        Self {
            stop,
            task: tokio::spawn(run(Shutdown(stopped))),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the loop and asserts it ends cleanly within `SOON`.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(SOON, self.task)
            .await
            .expect("agent stops")
            .expect("task")
            .expect("agent ran");
    }

    /// Stops the loop and waits at most `SOON` for it, whatever it returns.
    pub async fn stop_any(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(SOON, self.task).await;
    }
}

/// Resolves when the test stops the loop (or drops its `Running`).
pub struct Shutdown(oneshot::Receiver<()>);

impl Shutdown {
    pub async fn wait(self) {
        let _ = self.0.await;
    }
}
