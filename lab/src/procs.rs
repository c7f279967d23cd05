//! Every process the lab starts, tracked by PID and stopped for sure.
//!
//! The lab's promise is that it leaves nothing behind. Processes it spawns itself live in a
//! [`Supervisor`], which stops them (SIGTERM, then SIGKILL after a grace period) when asked and
//! again in `Drop`, so a panic or a failed start still cleans up. Processes it did not spawn in
//! this process (a delay relay started by another `echomesh-lab delay` invocation, leftovers of a
//! crashed lab) are found by namespace membership (`ip netns pids`) or by a PID file, and are only
//! signalled after checking that the PID still lives in the lab's namespace: nothing is ever
//! killed by name.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::cmd::{Cmd, CmdError};

/// How long a process gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(3);

/// A process could not be started or found.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// Spawning failed.
    #[error("cannot start {name} (`{program}`): {source}")]
    Spawn {
        /// Our name for the process.
        name: String,
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// No supervised process has that name.
    #[error("no process named {0} is running in this lab")]
    Unknown(String),
    /// Listing a namespace's processes failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
}

#[derive(Debug)]
struct Supervised {
    name: String,
    child: Child,
}

/// The processes this lab spawned, stopped on [`Supervisor::stop_all`] and on drop.
#[derive(Debug, Default)]
pub struct Supervisor {
    children: Vec<Supervised>,
}

impl Supervisor {
    /// An empty supervisor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `command` and tracks it under `name`; returns its PID.
    pub fn spawn(&mut self, name: &str, mut command: Command) -> Result<u32, ProcError> {
        let child = command.spawn().map_err(|source| ProcError::Spawn {
            name: name.to_string(),
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let pid = child.id();
        tracing::debug!(name, pid, "started");
        self.children.push(Supervised {
            name: name.to_string(),
            child,
        });
        Ok(pid)
    }

    /// Names and PIDs of the tracked processes.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|s| (s.name.clone(), s.child.id()))
            .collect()
    }

    /// The PID of the process tracked as `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.child.id())
    }

    /// Tracked processes that have exited (they stay tracked until stopped).
    pub fn exited(&mut self) -> Vec<(String, ExitStatus)> {
        self.children
            .iter_mut()
            .filter_map(|s| match s.child.try_wait() {
                Ok(Some(status)) => Some((s.name.clone(), status)),
                _ => None,
            })
            .collect()
    }

    /// Stops the process tracked as `name` and forgets it.
    pub fn stop(&mut self, name: &str, grace: Duration) -> Result<(), ProcError> {
        let i = self
            .children
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| ProcError::Unknown(name.to_string()))?;
        let mut s = self.children.remove(i);
        stop_child(&mut s.child, grace);
        Ok(())
    }

    /// Stops every tracked process: SIGTERM to all at once (so they shut down in parallel),
    /// then SIGKILL to any still running after `grace`; every one is reaped.
    pub fn stop_all(&mut self, grace: Duration) {
        for s in &mut self.children {
            if matches!(s.child.try_wait(), Ok(None)) {
                signal(s.child.id(), Signal::TERM);
            }
        }
        let deadline = Instant::now() + grace;
        // Newest first: agents before the aggregator they talk to.
        while let Some(mut s) = self.children.pop() {
            let left = deadline.saturating_duration_since(Instant::now());
            stop_child(&mut s.child, left);
            tracing::debug!(name = %s.name, "stopped");
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_all(GRACE);
    }
}

fn signal(pid: u32, sig: Signal) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    kill_process(pid, sig).is_ok()
}

/// SIGTERM, wait up to `grace`, SIGKILL, reap.
pub fn stop_child(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child.id(), Signal::TERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!(
        pid = child.id(),
        "did not stop after SIGTERM; sending SIGKILL"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// PIDs of the processes living in namespace `ns` (`ip netns pids`).
pub fn ns_pids(ns: &str) -> Result<Vec<u32>, CmdError> {
    let out = Cmd::ip(None, ["netns", "pids", ns]).run()?;
    Ok(out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect())
}

/// The namespace name `pid` lives in, if it is a named one (`ip netns identify`).
pub fn ns_of(pid: u32) -> Option<String> {
    Cmd::ip(
        None,
        ["netns".to_string(), "identify".into(), pid.to_string()],
    )
    .run()
    .ok()
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
}

/// True while `pid` exists and has not finished exiting (a zombie counts as gone).
pub fn running(pid: u32) -> bool {
    echomesh_runtime::procfs::running(echomesh_runtime::procfs::Proc::Pid(pid))
}

/// Stops a process we did not spawn, but only while it is still in namespace `ns`.
/// Returns true if it was there and has stopped.
pub fn stop_pid_in_ns(pid: u32, ns: &str, grace: Duration) -> bool {
    if ns_of(pid).as_deref() != Some(ns) {
        return false;
    }
    signal(pid, Signal::TERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if ns_of(pid).as_deref() == Some(ns) {
        tracing::warn!(pid, ns, "did not stop after SIGTERM; sending SIGKILL");
        signal(pid, Signal::KILL);
    }
    true
}

/// Stops every process in namespace `ns` (SIGTERM to all, then SIGKILL to stragglers) and
/// returns once they have all exited.
pub fn stop_all_in_ns(ns: &str, grace: Duration) -> Result<usize, CmdError> {
    let pids = ns_pids(ns)?;
    for &pid in &pids {
        signal(pid, Signal::TERM);
    }
    let mut deadline = Instant::now() + grace;
    let mut killed = false;
    loop {
        // A process leaves the namespace early in its exit; wait until it has really exited.
        let mut left: Vec<u32> = pids.iter().copied().filter(|&p| running(p)).collect();
        left.extend(ns_pids(ns)?.into_iter().filter(|p| !pids.contains(p)));
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            if killed {
                tracing::warn!(ns, ?left, "processes did not exit after SIGKILL");
                break;
            }
            for &pid in &left {
                tracing::warn!(pid, ns, "did not stop after SIGTERM; sending SIGKILL");
                signal(pid, Signal::KILL);
            }
            killed = true;
            deadline = Instant::now() + Duration::from_secs(2);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(pids.len())
}
