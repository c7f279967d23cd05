//! `echomesh-lab`: parse flags, set up logging, run the subcommand.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use echomesh_lab::demo::{self, DemoConfig};
use echomesh_lab::family::IpFamily;
use echomesh_lab::fault::{self, Fault};
use echomesh_lab::lab::{self, LabConfig, LabError};
use echomesh_lab::naming::{NodeName, Prefix};
use echomesh_lab::restart::{self, Process};
use echomesh_lab::{down, preflight, relay, state};
use echomesh_runtime::{parse_duration, shutdown, telemetry};

/// A simulated Kubernetes cluster in network namespaces, running echomesh, with fault injection.
#[derive(Debug, Parser)]
#[command(name = "echomesh-lab", version, about)]
struct Cli {
    /// Log filter (e.g. `info`, `echomesh_lab=debug`).
    #[arg(long, env = "ECHOMESH_LOG", default_value = "warn", global = true)]
    log: String,
    /// Directory holding one sub-directory per running lab.
    #[arg(long, env = "ECHOMESH_LAB_RUN_DIR", default_value = state::DEFAULT_RUN_DIR, global = true)]
    run_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Target {
    /// The lab (needed only when several run).
    #[arg(long, env = "ECHOMESH_LAB_PREFIX")]
    prefix: Option<Prefix>,
    /// The node: node1, node2, ... (or its number).
    node: NodeName,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a lab, run the aggregator and two agents per node, show the live matrix; Ctrl-C
    /// removes everything.
    Demo {
        /// Number of nodes.
        #[arg(long, env = "ECHOMESH_LAB_NODES", default_value_t = 4)]
        nodes: u32,
        /// Addresses of hosts and pods: ipv4, dual (IPv6 too, overlay over IPv4) or ipv6 (IPv6
        /// only, overlay over an IPv6 underlay) [default: ipv4].
        #[arg(long, env = "ECHOMESH_LAB_IP_FAMILY")]
        ip_family: Option<IpFamily>,
        /// Same as --ip-family dual.
        #[arg(long, env = "ECHOMESH_LAB_IPV6")]
        ipv6: bool,
        /// Name of the lab (default: eml + 4 random hex digits).
        #[arg(long, env = "ECHOMESH_LAB_PREFIX")]
        prefix: Option<Prefix>,
        /// Where echomesh-aggregator, echomesh-agent and echomesh are (default: next to this
        /// executable).
        #[arg(long, env = "ECHOMESH_LAB_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        /// Build only the network (no aggregator, no agents).
        #[arg(long, env = "ECHOMESH_LAB_NETWORK_ONLY")]
        network_only: bool,
        /// Time between matrix redraws (0s: do not draw).
        #[arg(long, env = "ECHOMESH_LAB_REFRESH", default_value = "2s", value_parser = parse_duration)]
        refresh: Duration,
    },
    /// Remove a lab (or, without --prefix, every lab and leftover) with all its processes.
    Down {
        /// The lab to remove.
        #[arg(long, env = "ECHOMESH_LAB_PREFIX")]
        prefix: Option<Prefix>,
    },
    /// List running labs.
    List,
    /// Cut a node's underlay link.
    Cut(Target),
    /// Restore a node's underlay link.
    Heal(Target),
    /// Drop a percentage of the packets a node sends (0 removes the loss).
    Loss {
        #[command(flatten)]
        target: Target,
        /// Percentage, 0-100.
        pct: String,
    },
    /// Delay every packet a node sends on the underlay (0 removes the delay).
    Delay {
        #[command(flatten)]
        target: Target,
        /// How long, with its unit (`2ms`, `1.5ms`; `0s` removes the delay).
        delay: String,
    },
    /// Lower the MTU of a node's fabric port: an MTU black hole (1500 restores it).
    Mtu {
        #[command(flatten)]
        target: Target,
        /// Bytes, 1280-1500.
        bytes: String,
    },
    /// Remove every fault from a node.
    Clear(Target),
    /// Stop one echomesh process of the lab and start it again as it ran (same command line,
    /// namespace and log; the aggregator keeps its ports and socket).
    Restart {
        /// The lab (needed only when several run).
        #[arg(long, env = "ECHOMESH_LAB_PREFIX")]
        prefix: Option<Prefix>,
        /// `aggregator`, or an agent: `node3-pod`, `node3-host`.
        process: Process,
    },
    /// The delay relay (started by `delay` inside a node's host namespace).
    #[command(hide = true)]
    Relay {
        /// TUN device to create.
        #[arg(long, default_value = fault::DELAY_TUN)]
        tun: String,
        /// The delay (`2ms`, `1500us`).
        #[arg(long, value_parser = parse_duration)]
        delay: Duration,
    },
}

fn lab_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("echomesh-lab"))
}

fn fail(e: &LabError) -> ExitCode {
    eprintln!("echomesh-lab: {e}");
    ExitCode::from(e.exit_code())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(telemetry::LogFormat::Text, &cli.log);
    let run_dir = cli.run_dir;
    let fault_cmd = |t: Target, f: Result<Fault, fault::FaultError>| -> ExitCode {
        let result = f
            .map_err(LabError::from)
            .and_then(|f| lab::inject(&run_dir, t.prefix.as_ref(), t.node, f, &lab_exe()));
        match result {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        }
    };
    match cli.command {
        Command::Demo {
            nodes,
            ip_family,
            ipv6,
            prefix,
            bin_dir,
            network_only,
            refresh,
        } => {
            let mut lab_cfg = LabConfig::new(nodes);
            lab_cfg.family = match (ip_family, ipv6) {
                (Some(f), true) if f != IpFamily::Dual => {
                    eprintln!(
                        "echomesh-lab: --ipv6 means --ip-family dual and cannot be combined with --ip-family {f}"
                    );
                    return ExitCode::from(2);
                }
                (Some(f), _) => f,
                (None, true) => IpFamily::Dual,
                (None, false) => IpFamily::Ipv4,
            };
            lab_cfg.prefix = prefix;
            lab_cfg.run_dir = run_dir.clone();
            lab_cfg.lab_exe = lab_exe();
            if let Some(d) = bin_dir {
                lab_cfg.bin_dir = d;
            }
            lab_cfg.echomesh = !network_only;
            let cfg = DemoConfig {
                lab: lab_cfg,
                refresh,
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("echomesh-lab: cannot start the runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime.block_on(demo::run(cfg, shutdown::signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Down { prefix } => {
            if let Err(e) = preflight::check_system() {
                return fail(&e.into());
            }
            let r = down::down(&run_dir, prefix.as_ref());
            if r.labs.is_empty() {
                println!("nothing to clean up");
            } else {
                println!(
                    "removed {} ({} namespaces, {} other processes)",
                    r.labs.join(", "),
                    r.namespaces,
                    r.processes
                );
            }
            ExitCode::SUCCESS
        }
        Command::List => match state::list(&run_dir) {
            Ok(labs) => {
                for p in labs {
                    let d = state::LabDir::new(&run_dir, &p);
                    match d.load() {
                        Ok(st) if !st.ready => println!("{p}\tstarting"),
                        Ok(st) => println!(
                            "{p}\t{} nodes\t{}",
                            st.plan.nodes.len(),
                            st.aggregator
                                .map(|a| format!("http://{}", a.grpc))
                                .unwrap_or_else(|| "network only".into())
                        ),
                        Err(_) => println!("{p}\t(starting or damaged)"),
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.into()),
        },
        Command::Cut(t) => fault_cmd(t, Ok(Fault::Cut)),
        Command::Heal(t) => fault_cmd(t, Ok(Fault::Heal)),
        Command::Clear(t) => fault_cmd(t, Ok(Fault::Clear)),
        Command::Loss { target, pct } => {
            fault_cmd(target, fault::parse_percent(&pct).map(Fault::Loss))
        }
        Command::Delay { target, delay } => {
            fault_cmd(target, fault::parse_delay(&delay).map(Fault::Delay))
        }
        Command::Mtu { target, bytes } => {
            fault_cmd(target, fault::parse_mtu(&bytes).map(Fault::Mtu))
        }
        Command::Restart { prefix, process } => {
            match restart::restart(&run_dir, prefix.as_ref(), process) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Relay { tun, delay } => match relay::run(&tun, delay) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echomesh-lab relay: {e}");
                ExitCode::from(1)
            }
        },
    }
}
