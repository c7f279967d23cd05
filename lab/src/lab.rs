//! A running lab: the namespaces, the aggregator in the root namespace (loopback + a unix
//! socket), two agents per node, the delay relays, and the operations tests and the demo need.
//!
//! [`Lab::start`] checks first (root, namespaces, free prefix, binaries), then builds; every
//! resource is owned by the returned [`Lab`] (or, on a failed start, by the partially built
//! one being dropped), and `Drop` stops every process and deletes every namespace and the lab
//! directory. A lab started with `echomesh: false` is just the network, for testing the
//! topology and the faults with `echomesh-agent probe` before the aggregator exists.

use std::collections::HashMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::CmdError;
use crate::family::IpFamily;
use crate::fault::{Fault, FaultError, Injector, stop_relay};
use crate::naming::{NameError, NodeName, Prefix};
use crate::plan::{Network, NodePlan, Plan, PlanError};
use crate::preflight::{self, ECHOMESH_BINARIES, PreflightError};
use crate::procs::{GRACE, ProcError, Supervisor};
use crate::state::{AggregatorInfo, LabDir, LabState, STATE_VERSION, StateError};
use crate::topology::{Topology, TopologyError};

/// How long agents must stay up after their start for the lab to count as started.
pub const AGENT_SETTLE: Duration = Duration::from_millis(500);
/// How long the aggregator gets to start listening.
pub const AGGREGATOR_START: Duration = Duration::from_secs(15);

/// Anything that can go wrong in the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A precondition failed.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// A bad name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A bad plan.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Lab state.
    #[error(transparent)]
    State(#[from] StateError),
    /// Building the namespaces.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Processes.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// Faults.
    #[error(transparent)]
    Fault(#[from] FaultError),
    /// A command.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// The node does not exist in this lab.
    #[error("this lab has no {0} (it has node1 to node{1})")]
    NoSuchNode(NodeName, usize),
    /// The lab is still being built.
    #[error("lab {0} is still starting; try again in a moment")]
    Starting(String),
    /// A process exited during start-up.
    #[error(
        "{name} exited during start-up ({status}); the end of its log ({log}, removed with the lab):\n{tail}"
    )]
    Exited {
        /// Which process.
        name: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: String,
        /// The last lines of the log.
        tail: String,
    },
    /// The aggregator did not come up.
    #[error("the aggregator did not start: {0}")]
    Aggregator(String),
    /// A restart could not be done.
    #[error("cannot restart: {0}")]
    Restart(String),
}

impl LabError {
    /// The process exit code for this error: 2 for bad input and unmet preconditions, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LabError::Preflight(_)
            | LabError::Name(_)
            | LabError::Plan(_)
            | LabError::NoSuchNode(..)
            | LabError::Fault(FaultError::Percent(_) | FaultError::Delay(_)) => 2,
            LabError::State(StateError::NotFound(_) | StateError::Ambiguous(_)) => 2,
            _ => 1,
        }
    }
}

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Number of nodes.
    pub nodes: u32,
    /// The IP family of hosts and pods.
    pub family: IpFamily,
    /// Prefix (random if None).
    pub prefix: Option<Prefix>,
    /// Where lab directories live.
    pub run_dir: PathBuf,
    /// Where the echomesh binaries are.
    pub bin_dir: PathBuf,
    /// The `echomesh-lab` binary (runs delay relays).
    pub lab_exe: PathBuf,
    /// Start the aggregator and the agents (false: network only).
    pub echomesh: bool,
    /// Extra aggregator flags.
    pub aggregator_args: Vec<String>,
    /// Extra agent flags (after `run`).
    pub agent_args: Vec<String>,
    /// Log filter passed to the processes as `ECHOMESH_LOG`.
    pub log: String,
}

impl LabConfig {
    /// Defaults: `nodes` nodes, IPv4, random prefix, binaries next to this executable.
    pub fn new(nodes: u32) -> Self {
        let bin_dir = preflight::default_bin_dir();
        LabConfig {
            nodes,
            family: IpFamily::Ipv4,
            prefix: None,
            run_dir: crate::state::run_dir(),
            lab_exe: bin_dir.join("echomesh-lab"),
            bin_dir,
            echomesh: true,
            aggregator_args: Vec::new(),
            agent_args: Vec::new(),
            log: "info".into(),
        }
    }
}

/// Every check [`Lab::start`] makes before it creates anything: root, namespaces, IPv6 when
/// the family needs it, binaries, node count, and (for a chosen prefix) that the prefix is free.
pub fn check(cfg: &LabConfig) -> Result<(), LabError> {
    preflight::check_system()?;
    preflight::check_ipv6(cfg.family, preflight::kernel_has_ipv6())?;
    if cfg.echomesh {
        preflight::find_binaries(&cfg.bin_dir, &ECHOMESH_BINARIES)?;
    }
    // The delay relay is `echomesh-lab relay`: the lab needs its own binary too.
    let lab_dir = cfg.lab_exe.parent().unwrap_or(Path::new("."));
    let lab_name = cfg
        .lab_exe
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("echomesh-lab");
    preflight::find_binaries(lab_dir, &[(lab_name, "echomesh-lab")])?;
    if let Some(prefix) = &cfg.prefix {
        Plan::new(prefix, cfg.nodes, cfg.family)?;
        preflight::check_prefix_free(prefix, &LabDir::new(&cfg.run_dir, prefix))?;
    } else {
        Plan::new(&Prefix::random(), cfg.nodes, cfg.family)?;
    }
    Ok(())
}

/// A running lab; dropping it removes everything it made.
#[derive(Debug)]
pub struct Lab {
    procs: Supervisor,
    relays: HashMap<u8, Child>,
    topology: Option<Topology>,
    dir: LabDir,
    state: LabState,
    cfg: LabConfig,
}

impl Lab {
    /// Checks, builds the network, starts the aggregator and agents, writes `state.json`.
    pub fn start(cfg: LabConfig) -> Result<Lab, LabError> {
        check(&cfg)?;
        let prefix = cfg.prefix.clone().unwrap_or_else(Prefix::random);
        let plan = Plan::new(&prefix, cfg.nodes, cfg.family)?;
        let dir = LabDir::new(&cfg.run_dir, &prefix);
        preflight::check_prefix_free(&prefix, &dir)?;
        dir.create().map_err(|e| match e {
            StateError::Exists(p) => LabError::Preflight(PreflightError::PrefixInUse {
                prefix: prefix.to_string(),
                what: format!("{} exists", p.display()),
            }),
            other => other.into(),
        })?;
        // From here on, `lab` owns everything: an early return drops it and cleans up.
        let mut lab = Lab {
            procs: Supervisor::new(),
            relays: HashMap::new(),
            topology: None,
            dir,
            state: LabState {
                version: STATE_VERSION,
                plan: plan.clone(),
                owner_pid: std::process::id(),
                bin_dir: cfg.bin_dir.clone(),
                aggregator: None,
                ready: false,
            },
            cfg,
        };
        lab.dir.save(&lab.state)?;
        lab.topology = Some(Topology::build(plan)?);
        if lab.cfg.echomesh {
            lab.start_aggregator()?;
            for n in lab.state.plan.nodes.clone() {
                for network in [Network::Pod, Network::Host] {
                    lab.start_agent(NodeName(n.index), network)?;
                }
            }
            // An agent that cannot start (bad flag, no raw socket) exits at once: fail the
            // start with its own words rather than show an empty matrix.
            std::thread::sleep(AGENT_SETTLE);
            if let Some((name, status)) = lab.procs.exited().into_iter().next() {
                let log = lab.dir.log_file(&name);
                return Err(LabError::Exited {
                    name,
                    status: status.to_string(),
                    log: log.display().to_string(),
                    tail: tail(&log, 10),
                });
            }
        }
        lab.state.ready = true;
        lab.dir.save(&lab.state)?;
        Ok(lab)
    }

    /// The lab's prefix.
    pub fn prefix(&self) -> &str {
        &self.state.plan.prefix
    }

    /// The topology.
    pub fn plan(&self) -> &Plan {
        &self.state.plan
    }

    /// What `state.json` says.
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// The `echomesh-lab` binary this lab uses for relays.
    pub fn lab_exe(&self) -> &Path {
        &self.cfg.lab_exe
    }

    /// The lab's directory.
    pub fn dir(&self) -> &LabDir {
        &self.dir
    }

    /// The node named `name`.
    pub fn node(&self, name: NodeName) -> Result<&NodePlan, LabError> {
        self.state
            .plan
            .node(name.0)
            .ok_or(LabError::NoSuchNode(name, self.state.plan.nodes.len()))
    }

    /// The aggregator's gRPC URL for the CLI (`http://127.0.0.1:PORT`).
    pub fn grpc_url(&self) -> Option<String> {
        self.state
            .aggregator
            .as_ref()
            .map(|a| format!("http://{}", a.grpc))
    }

    /// Applies a fault; relays started here are stopped by `clear`, another delay, or drop.
    pub fn fault(&mut self, node: NodeName, fault: Fault) -> Result<(), LabError> {
        let n = self.node(node)?.clone();
        let injector = Injector::new(&self.state.plan, &self.dir, &self.cfg.lab_exe);
        if matches!(fault, Fault::Delay(_) | Fault::Clear)
            && let Some(mut child) = self.relays.remove(&n.index)
        {
            injector.undelay(&n, Some(&mut child));
        }
        if let Some(child) = injector.apply(&n, fault)? {
            self.relays.insert(n.index, child);
        }
        Ok(())
    }

    /// A command that runs `program` inside namespace `ns`.
    pub fn command_in(&self, ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Name under which an agent is supervised.
    pub fn agent_name(node: NodeName, network: Network) -> String {
        format!("agent-{node}-{}", network.as_str())
    }

    /// Starts the aggregator (again, after [`Lab::stop_process`]: same ports, same socket).
    pub fn start_aggregator(&mut self) -> Result<(), LabError> {
        let socket = self.dir.agent_socket();
        let (grpc, http) = match &self.state.aggregator {
            Some(a) => (a.grpc, a.http),
            None => (free_port()?, free_port()?),
        };
        let _ = fs::remove_file(&socket);
        let token = self.dir.ensure_agent_token()?;
        let log = self.dir.log_file("aggregator");
        let mut cmd = Command::new(self.cfg.bin_dir.join("echomesh-aggregator"));
        cmd.arg("--grpc-listen")
            .arg(grpc.to_string())
            .arg("--http-listen")
            .arg(http.to_string())
            .arg("--agent-socket")
            .arg(&socket)
            .arg("--agent-token-file")
            .arg(&token)
            .args(&self.cfg.aggregator_args)
            .env("ECHOMESH_LOG", &self.cfg.log);
        let pid = self.spawn("aggregator", cmd, &log)?;
        self.state.aggregator = Some(AggregatorInfo {
            grpc,
            http,
            socket: socket.clone(),
            pid,
        });
        let deadline = Instant::now() + AGGREGATOR_START;
        loop {
            if let Some((_, status)) = self
                .procs
                .exited()
                .into_iter()
                .find(|(n, _)| n == "aggregator")
            {
                let _ = self.procs.stop("aggregator", GRACE);
                return Err(LabError::Aggregator(format!(
                    "it exited ({status}); its log: {}\n{}",
                    log.display(),
                    tail(&log, 20)
                )));
            }
            if socket.exists() && TcpStream::connect(grpc).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(LabError::Aggregator(format!(
                    "not listening after {} s; its log: {}",
                    AGGREGATOR_START.as_secs(),
                    log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.dir.save(&self.state)?;
        Ok(())
    }

    /// Starts the agent of `node` on `network` inside its namespace.
    pub fn start_agent(&mut self, node: NodeName, network: Network) -> Result<(), LabError> {
        let n = self.node(node)?.clone();
        let socket = self.dir.agent_socket();
        let name = Self::agent_name(node, network);
        let log = self.dir.log_file(&name);
        let mut cmd = self.command_in(n.ns(network), &self.cfg.bin_dir.join("echomesh-agent"));
        cmd.arg("run")
            .arg("--aggregator")
            .arg(format!("unix://{}", socket.display()))
            .arg("--agent-token-file")
            .arg(self.dir.agent_token())
            .args(["--node", &n.name, "--network", network.as_str()]);
        for addr in n.addresses(network) {
            cmd.arg("--address").arg(addr.to_string());
        }
        // The lab's own networks; extra `--allow-cidr` flags in `agent_args` add to them.
        cmd.args(["--allow-cidr", crate::plan::AGENT_ALLOW_CIDRS]);
        cmd.args(&self.cfg.agent_args)
            .env("ECHOMESH_LOG", &self.cfg.log);
        self.spawn(&name, cmd, &log)?;
        Ok(())
    }

    /// Stops one supervised process (`aggregator`, or an [`Lab::agent_name`]).
    pub fn stop_process(&mut self, name: &str) -> Result<(), LabError> {
        self.procs.stop(name, GRACE)?;
        Ok(())
    }

    /// PID of a supervised process.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs.pid(name)
    }

    /// Supervised processes that have exited since they were started.
    pub fn exited(&mut self) -> Vec<(String, std::process::ExitStatus)> {
        self.procs.exited()
    }

    fn spawn(&mut self, name: &str, mut cmd: Command, log: &Path) -> Result<u32, LabError> {
        let out = fs::File::create(log).map_err(|source| StateError::Io {
            path: log.to_path_buf(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| StateError::Io {
            path: log.to_path_buf(),
            source,
        })?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // Own process group: a Ctrl-C reaches only echomesh-lab, which then stops everything
        // in order (agents before the aggregator) instead of all at once.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Ok(self.procs.spawn(name, cmd)?)
    }

    /// Stops everything and removes the lab (what drop does, callable explicitly).
    pub fn shutdown(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        self.procs.stop_all(GRACE);
        for n in self.state.plan.nodes.clone() {
            let mut child = self.relays.remove(&n.index);
            stop_relay(&self.dir, &n, child.as_mut());
        }
        if let Some(mut t) = self.topology.take() {
            t.teardown();
        }
        if let Err(e) = self.dir.remove() {
            tracing::warn!(error = %e, "could not remove the lab directory");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// A free loopback port (bound and released; the aggregator binds it right after).
fn free_port() -> Result<SocketAddr, LabError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| LabError::Aggregator(format!("no free loopback port: {e}")))?;
    l.local_addr()
        .map_err(|e| LabError::Aggregator(format!("no free loopback port: {e}")))
}

/// The last `lines` lines of a log file (for error messages).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Applies `fault` to `node` of a lab started elsewhere (another terminal's `demo`), found
/// through its `state.json`. A delay relay started here keeps running after this returns.
/// Returns a one-line description of what was done.
pub fn inject(
    run_dir: &Path,
    prefix: Option<&Prefix>,
    node: NodeName,
    fault: Fault,
    lab_exe: &Path,
) -> Result<String, LabError> {
    preflight::check_system()?;
    let dir = crate::state::resolve(run_dir, prefix)?;
    let state = dir.load()?;
    if !state.ready {
        return Err(LabError::Starting(state.plan.prefix.clone()));
    }
    let n = state
        .plan
        .node(node.0)
        .ok_or(LabError::NoSuchNode(node, state.plan.nodes.len()))?;
    let injector = Injector::new(&state.plan, &dir, lab_exe);
    // Dropping the Child leaves the relay running on its own (it is in its own process group).
    drop(injector.apply(n, fault)?);
    Ok(describe(&state.plan.prefix, n, fault))
}

/// A one-line account of a fault.
pub fn describe(prefix: &str, n: &NodePlan, fault: Fault) -> String {
    let what = match fault {
        Fault::Cut => "underlay link cut".to_string(),
        Fault::Heal => "underlay link restored".to_string(),
        Fault::Loss(0) => "loss removed".to_string(),
        Fault::Loss(p) => format!("dropping {p}% of egress packets"),
        Fault::Delay(d) if d.is_zero() => "delay removed".to_string(),
        Fault::Delay(d) => format!("+{d:?} on every packet it sends"),
        Fault::Mtu(b) if b >= crate::family::UNDERLAY_MTU => "fabric port MTU restored".to_string(),
        Fault::Mtu(b) => format!("fabric port MTU {b}: larger frames are dropped in silence"),
        Fault::Clear => "all faults cleared".to_string(),
    };
    format!("{prefix} {}: {what}", n.name)
}
