//! `echomesh-lab restart aggregator|nodeN-pod|nodeN-host`: stop one echomesh process of a running
//! lab and start it again exactly as it ran.
//!
//! Restarts are how a soak or a reader checks that agents reconnect and replay and that the
//! aggregator comes back with the same ports, socket and token. The lab started elsewhere (another
//! terminal's `demo`) owns its processes, so this command works from `state.json` and `/proc`: the
//! process is found by the PID the lab recorded (the aggregator) or as the only `echomesh-agent`
//! in the node's namespace (an agent), its command line and environment are read from `/proc`,
//! it is stopped (SIGTERM, SIGKILL after the grace period), and the same command line is started
//! again in the same namespace, in its own process group, appending to the same log (so it runs
//! the binary now at that path: a soak copies its binaries first). A restarted
//! aggregator's new PID goes into `state.json`, so `echomesh-lab down` still finds it. Nothing is
//! ever found or signalled by name alone: the PID's executable is checked first.

use std::ffi::OsString;
use std::fmt;
use std::net::TcpStream;
use std::os::unix::ffi::OsStringExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::lab::{AGGREGATOR_START, LabError};
use crate::naming::{NodeName, Prefix};
use crate::plan::Network;
use crate::procs::{GRACE, ns_pids, running};
use crate::state::{LabDir, resolve};

/// Which process to restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// The aggregator.
    Aggregator,
    /// The agent of a node on one of its networks.
    Agent(NodeName, Network),
}

impl FromStr for Process {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{s}` is not a lab process: aggregator, or NODE-pod / NODE-host (e.g. node3-pod)"
            )
        };
        if s == "aggregator" {
            return Ok(Process::Aggregator);
        }
        let (node, network) = s.rsplit_once('-').ok_or_else(bad)?;
        let network = match network {
            "pod" => Network::Pod,
            "host" => Network::Host,
            _ => return Err(bad()),
        };
        let node = node.parse::<NodeName>().map_err(|_| bad())?;
        Ok(Process::Agent(node, network))
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Aggregator => f.write_str("aggregator"),
            Process::Agent(n, net) => write!(f, "{n}-{}", net.as_str()),
        }
    }
}

/// Splits a `/proc/<pid>/cmdline` or `environ` buffer (NUL-terminated strings) into its parts.
pub fn split_nul(raw: &[u8]) -> Vec<OsString> {
    raw.split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| OsString::from_vec(p.to_vec()))
        .collect()
}

/// The command that starts `argv` again with environment `env`, inside namespace `ns` when given.
pub fn relaunch_command(argv: &[OsString], env: &[OsString], ns: Option<&str>) -> Option<Command> {
    let (program, args) = argv.split_first()?;
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args).env_clear();
    for kv in env {
        let kv = kv.to_string_lossy();
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    Some(cmd)
}

/// The file name of `pid`'s executable. A binary replaced on disk while the process runs (a
/// rebuild) reads as `name (deleted)`; it is still the same program.
fn exe_name(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| strip_deleted(&n).to_string())
}

fn strip_deleted(name: &str) -> &str {
    name.strip_suffix(" (deleted)").unwrap_or(name)
}

fn read_proc(pid: u32, what: &str) -> Result<Vec<OsString>, LabError> {
    std::fs::read(format!("/proc/{pid}/{what}"))
        .map(|raw| split_nul(&raw))
        .map_err(|e| LabError::Restart(format!("cannot read /proc/{pid}/{what}: {e}")))
}

fn stop(pid: u32) {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    let _ = kill_process(p, Signal::TERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if !running(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!(pid, "did not stop after SIGTERM; sending SIGKILL");
    let _ = kill_process(p, Signal::KILL);
    while running(pid) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Restarts `process` of the lab `prefix` (or the only lab); returns a one-line account with the
/// old and new PIDs.
pub fn restart(
    run_dir: &Path,
    prefix: Option<&Prefix>,
    process: Process,
) -> Result<String, LabError> {
    crate::preflight::check_system()?;
    let dir: LabDir = resolve(run_dir, prefix)?;
    let mut state = dir.load()?;
    if !state.ready {
        return Err(LabError::Starting(state.plan.prefix.clone()));
    }
    let (pid, ns) = match process {
        Process::Aggregator => {
            let agg = state.aggregator.as_ref().ok_or_else(|| {
                LabError::Restart("this lab runs no aggregator (--network-only)".into())
            })?;
            if !running(agg.pid) || exe_name(agg.pid).as_deref() != Some("echomesh-aggregator") {
                return Err(LabError::Restart(format!(
                    "the aggregator recorded in {} (PID {}) is not running",
                    dir.state_file().display(),
                    agg.pid
                )));
            }
            (agg.pid, None)
        }
        Process::Agent(node, network) => {
            let n = state
                .plan
                .node(node.0)
                .ok_or(LabError::NoSuchNode(node, state.plan.nodes.len()))?;
            let ns = n.ns(network).to_string();
            let agents: Vec<u32> = ns_pids(&ns)?
                .into_iter()
                .filter(|&p| running(p) && exe_name(p).as_deref() == Some("echomesh-agent"))
                .collect();
            match agents.as_slice() {
                [one] => (*one, Some(ns)),
                [] => {
                    return Err(LabError::Restart(format!(
                        "no echomesh-agent runs in namespace {ns}"
                    )));
                }
                many => {
                    return Err(LabError::Restart(format!(
                        "{} echomesh-agent processes run in namespace {ns} ({many:?}); expected one",
                        many.len()
                    )));
                }
            }
        }
    };
    let argv = read_proc(pid, "cmdline")?;
    let env = read_proc(pid, "environ")?;
    let mut cmd = relaunch_command(&argv, &env, ns.as_deref())
        .ok_or_else(|| LabError::Restart(format!("PID {pid} has an empty command line")))?;
    stop(pid);

    let log = dir.log_file(&process_log_name(process));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| LabError::Restart(format!("{}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| LabError::Restart(format!("{}: {e}", log.display())))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let (Process::Aggregator, Some(agg)) = (process, &state.aggregator) {
        let _ = std::fs::remove_file(&agg.socket);
    }
    let child = cmd
        .spawn()
        .map_err(|e| LabError::Restart(format!("cannot start {process} again: {e}")))?;
    let new_pid = child.id();
    // Dropping the Child leaves the process running on its own.
    drop(child);

    if let Some(agg) = state
        .aggregator
        .as_mut()
        .filter(|_| process == Process::Aggregator)
    {
        let deadline = Instant::now() + AGGREGATOR_START;
        loop {
            if !running(new_pid) {
                return Err(LabError::Aggregator(format!(
                    "it exited right after the restart; its log: {}\n{}",
                    log.display(),
                    crate::lab::tail(&log, 20)
                )));
            }
            if agg.socket.exists() && TcpStream::connect(agg.grpc).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(LabError::Aggregator(format!(
                    "not listening {} s after the restart; its log: {}",
                    AGGREGATOR_START.as_secs(),
                    log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        agg.pid = new_pid;
        dir.save(&state)?;
    }
    Ok(format!(
        "{} {process}: restarted (PID {pid} -> {new_pid})",
        state.plan.prefix
    ))
}

fn process_log_name(process: Process) -> String {
    match process {
        Process::Aggregator => "aggregator".into(),
        Process::Agent(node, network) => crate::lab::Lab::agent_name(node, network),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_names_parse_and_print_back() {
        assert_eq!("aggregator".parse(), Ok(Process::Aggregator));
        assert_eq!(
            "node3-pod".parse(),
            Ok(Process::Agent(NodeName(3), Network::Pod))
        );
        assert_eq!(
            "2-host".parse(),
            Ok(Process::Agent(NodeName(2), Network::Host))
        );
        for p in ["node3-pod", "node12-host", "aggregator"] {
            assert_eq!(p.parse::<Process>().expect(p).to_string(), p);
        }
        for bad in [
            "",
            "agent",
            "node3",
            "node3-tun",
            "node0-pod",
            "nodex-host",
            "-pod",
        ] {
            let err = bad.parse::<Process>().expect_err(bad);
            assert!(err.contains("is not a lab process"), "{bad}: {err}");
            assert!(err.contains("node3-pod"), "{err}");
        }
    }

    #[test]
    fn a_rebuilt_binary_is_still_the_same_program() {
        assert_eq!(strip_deleted("echomesh-agent (deleted)"), "echomesh-agent");
        assert_eq!(strip_deleted("echomesh-agent"), "echomesh-agent");
    }

    #[test]
    fn proc_buffers_split_on_nul() {
        let v = split_nul(b"/bin/echomesh-agent\0run\0--node\0node1\0");
        assert_eq!(v, ["/bin/echomesh-agent", "run", "--node", "node1"]);
        assert!(split_nul(b"").is_empty());
    }

    #[test]
    fn the_relaunch_is_the_same_command_in_the_same_namespace() {
        let argv = split_nul(b"/b/echomesh-agent\0run\0--network\0pod\0");
        let env = split_nul(b"ECHOMESH_LOG=info\0PATH=/usr/bin\0");
        let c = relaunch_command(&argv, &env, Some("emlab12-node1-pod")).expect("command");
        assert_eq!(c.get_program(), "ip");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(
            args,
            [
                "netns",
                "exec",
                "emlab12-node1-pod",
                "/b/echomesh-agent",
                "run",
                "--network",
                "pod"
            ]
        );
        let envs: Vec<_> = c.get_envs().collect();
        assert!(envs.contains(&("ECHOMESH_LOG".as_ref(), Some("info".as_ref()))));

        let c = relaunch_command(&split_nul(b"/b/echomesh-aggregator\0--x\0"), &[], None)
            .expect("command");
        assert_eq!(c.get_program(), "/b/echomesh-aggregator");
        assert_eq!(c.get_args().collect::<Vec<_>>(), ["--x"]);
        assert!(relaunch_command(&[], &[], None).is_none());
    }
}
