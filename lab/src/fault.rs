//! Fault injection on one node's underlay: cut, loss, delay, and undoing them.
//!
//! All faults act where a real node's NIC would: on the node's host namespace or on its port of
//! the fabric bridge, so pod traffic (VXLAN-encapsulated) and host traffic are hit alike and
//! every round trip that crosses the node's underlay link is affected exactly once.
//!
//! - **cut**: the node's port on the fabric bridge goes down (a pulled cable); its `eth0` loses
//!   carrier and every packet to or from the node is dropped. **heal** brings it back up and
//!   flushes FAILED neighbour entries so traffic resumes at once.
//! - **loss PCT**: an nftables table `inet echomesh_lab` in the host namespace drops PCT % of the
//!   packets leaving `eth0` (`numgen random mod 100 < PCT`). A round trip leaves the node once
//!   (the request if the node sends it, the reply if it answers), so edge loss ≈ PCT.
//! - **delay MS**: there is no `sch_netem` on the target kernels, so a user-space relay holds
//!   packets. Policy routing sends everything the node puts on the underlay into a TUN device
//!   `dly0` (`ip rule 101: to <underlay> lookup 100`, table 100: `default dev dly0`); the relay
//!   (`echomesh-lab relay`, see [`crate::relay`]) reads each packet, waits MS, writes it back;
//!   the kernel receives it on `dly0` (`ip rule 100: iif dly0 lookup main`, `accept_local=1`)
//!   and forwards it out of `eth0`. Every round trip touching the node gets +MS once.
//! - **mtu BYTES**: the node's port on the fabric bridge gets this MTU while the node's `eth0`
//!   keeps 1500, like a switch port configured below the hosts' MTU: frames larger than BYTES to or
//!   from the node are dropped in silence (the bridge and the veth drop them; nobody sends
//!   fragmentation-needed), small ones pass. An MTU black hole.
//! - **clear**: all of the above undone.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{Cmd, CmdError, run_all};
use crate::family::UNDERLAY_MTU;
use crate::plan::{NodePlan, Plan, V6_UNDERLAY};
use crate::procs::{GRACE, stop_child, stop_pid_in_ns};
use crate::state::LabDir;

/// The TUN device of the delay relay.
pub const DELAY_TUN: &str = "dly0";
/// The nftables table of the loss fault.
pub const LOSS_TABLE: &str = "echomesh_lab";
/// Routing table the delay fault uses.
pub const DELAY_TABLE: &str = "100";
/// SCHED_FIFO priority of the delay relay (when `chrt` works here).
pub const RELAY_RT_PRIORITY: &str = "50";

/// True if `chrt --fifo` works on this machine (util-linux present, CAP_SYS_NICE held).
pub fn realtime_available() -> bool {
    Command::new("chrt")
        .args(["--fifo", RELAY_RT_PRIORITY, "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Longest delay accepted.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// Lowest MTU the `mtu` fault accepts: IPv6 needs 1280 on every link.
pub const MIN_MTU: u32 = 1280;

/// One fault to apply to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Underlay link down.
    Cut,
    /// Underlay link up again.
    Heal,
    /// Drop this percentage (0–100) of the node's egress packets; 0 removes the rule.
    Loss(u8),
    /// Hold every packet the node sends on the underlay this long; zero removes the relay.
    Delay(Duration),
    /// Lower the MTU of the node's fabric port to this many bytes (1500 restores it).
    Mtu(u32),
    /// Undo every fault on the node.
    Clear,
}

/// A fault could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// A command failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// Bad percentage.
    #[error("loss must be a percentage from 0 to 100, not {0}")]
    Percent(String),
    /// Bad delay.
    #[error("delay must be a duration from 0ms to 10s, like 2ms or 1.5ms: {0}")]
    Delay(String),
    /// Bad MTU.
    #[error("mtu must be a whole number of bytes from 1280 to 1500, not {0}")]
    Mtu(String),
    /// The relay did not come up.
    #[error("the delay relay on {node} did not start: {reason} (log: {log})")]
    Relay {
        /// The node.
        node: String,
        /// What went wrong.
        reason: String,
        /// Its log file.
        log: String,
    },
}

/// Parses a loss percentage (`10`, `10%`, `2.5` is refused: whole percent only).
pub fn parse_percent(s: &str) -> Result<u8, FaultError> {
    s.trim_end_matches('%')
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| FaultError::Percent(s.to_string()))
}

/// Parses a delay with its unit (`2ms`, `1.5ms`, `0s`), at most [`MAX_DELAY`].
pub fn parse_delay(s: &str) -> Result<Duration, FaultError> {
    let d = echomesh_runtime::parse_duration(s).map_err(FaultError::Delay)?;
    if d > MAX_DELAY {
        return Err(FaultError::Delay(format!("{s:?} is longer than 10s")));
    }
    Ok(d)
}

/// Parses an MTU in bytes, [`MIN_MTU`]..=[`UNDERLAY_MTU`].
pub fn parse_mtu(s: &str) -> Result<u32, FaultError> {
    s.parse::<u32>()
        .ok()
        .filter(|m| (MIN_MTU..=UNDERLAY_MTU).contains(m))
        .ok_or_else(|| FaultError::Mtu(s.to_string()))
}

/// Commands that set the MTU of node `n`'s fabric port.
pub fn mtu_cmds(plan: &Plan, n: &NodePlan, bytes: u32) -> Vec<Cmd> {
    vec![Cmd::ip(
        Some(&plan.fabric_ns),
        ["link", "set", &n.fabric_port, "mtu", &bytes.to_string()],
    )]
}

/// Commands that cut node `n` from the fabric.
pub fn cut_cmds(plan: &Plan, n: &NodePlan) -> Vec<Cmd> {
    vec![Cmd::ip(
        Some(&plan.fabric_ns),
        ["link", "set", &n.fabric_port, "down"],
    )]
}

/// Commands that reconnect node `n` to the fabric.
pub fn heal_cmds(plan: &Plan, n: &NodePlan) -> Vec<Cmd> {
    vec![Cmd::ip(
        Some(&plan.fabric_ns),
        ["link", "set", &n.fabric_port, "up"],
    )]
}

/// The nftables script that sets node loss to `pct` % (replacing any earlier loss rule).
/// `table ...; delete table ...;` first makes the script idempotent in one transaction.
pub fn loss_ruleset(pct: u8) -> String {
    let mut s = format!("table inet {LOSS_TABLE}\ndelete table inet {LOSS_TABLE}\n");
    if pct > 0 {
        // `mod 100` yields 0-99, and nft refuses `< 100` as out of range: 100 % is every packet.
        let sample = if pct >= 100 {
            String::new()
        } else {
            format!("numgen random mod 100 < {pct} ")
        };
        s.push_str(&format!(
            "table inet {LOSS_TABLE} {{\n  chain egress {{\n    type filter hook postrouting priority 0; policy accept;\n    oifname \"eth0\" {sample}counter drop\n  }}\n}}\n"
        ));
    }
    s
}

/// Routing that sends the node's underlay traffic through the relay's TUN (device must exist),
/// for each family the node has addresses in.
pub fn delay_route_cmds(plan: &Plan, n: &NodePlan) -> Vec<Cmd> {
    let h = n.host_ns.as_str();
    let ip = |line: String| Cmd::ip(Some(h), line.split_whitespace());
    let mut c = Vec::new();
    if n.family.has_v4() {
        c.push(Cmd::sysctl(
            h,
            &[
                ("net.ipv4.conf.dly0.rp_filter", "0"),
                // Packets come back from the relay with our own source address.
                ("net.ipv4.conf.dly0.accept_local", "1"),
            ],
        ));
    }
    c.push(ip(format!("link set {DELAY_TUN} up")));
    if n.family.has_v4() {
        c.extend([
            ip(format!(
                "route replace default dev {DELAY_TUN} src {} table {DELAY_TABLE}",
                n.host_v4
            )),
            ip(format!("rule add pref 100 iif {DELAY_TUN} lookup main")),
            ip(format!(
                "rule add pref 101 to 198.18.0.0/{} lookup {DELAY_TABLE}",
                plan.underlay_prefix_len
            )),
        ]);
    }
    if let Some(v6) = &n.v6 {
        // IPv6 has no accept_local or rp_filter to relax: packets from the TUN are forwarded.
        c.extend([
            ip(format!(
                "-6 route replace default dev {DELAY_TUN} src {} table {DELAY_TABLE}",
                v6.host
            )),
            ip(format!("-6 rule add pref 100 iif {DELAY_TUN} lookup main")),
            ip(format!(
                "-6 rule add pref 101 to {V6_UNDERLAY} lookup {DELAY_TABLE}"
            )),
        ]);
    }
    c
}

/// Commands that remove the delay routing (each may fail harmlessly when absent).
pub fn undelay_route_cmds(n: &NodePlan) -> Vec<Cmd> {
    let h = Some(n.host_ns.as_str());
    let mut c = Vec::new();
    for (fam, present) in [("-4", n.family.has_v4()), ("-6", n.v6.is_some())] {
        if !present {
            continue;
        }
        c.push(Cmd::ip(h, [fam, "rule", "del", "pref", "101"]));
        c.push(Cmd::ip(h, [fam, "rule", "del", "pref", "100"]));
        c.push(Cmd::ip(h, [fam, "route", "flush", "table", DELAY_TABLE]));
    }
    c
}

/// Applies faults to a lab's nodes, tracking the relays it starts.
#[derive(Debug)]
pub struct Injector<'a> {
    plan: &'a Plan,
    dir: &'a LabDir,
    lab_exe: &'a Path,
}

impl<'a> Injector<'a> {
    /// An injector for the lab described by `plan`, with state in `dir`; `lab_exe` is the
    /// `echomesh-lab` binary (it runs the relay).
    pub fn new(plan: &'a Plan, dir: &'a LabDir, lab_exe: &'a Path) -> Self {
        Injector { plan, dir, lab_exe }
    }

    /// Applies `fault` to node `n`. A delay returns the relay it started: the caller either
    /// keeps it (and stops it with [`stop_relay`]) or drops it to leave it running detached.
    pub fn apply(&self, n: &NodePlan, fault: Fault) -> Result<Option<Child>, FaultError> {
        tracing::info!(node = %n.name, ?fault, "fault");
        match fault {
            Fault::Cut => run_all(&cut_cmds(self.plan, n))?,
            Fault::Heal => self.heal(n)?,
            Fault::Loss(pct) => Cmd::nft_script(&n.host_ns, loss_ruleset(pct))
                .run()
                .map(drop)?,
            Fault::Delay(d) => {
                self.undelay(n, None);
                if !d.is_zero() {
                    return self.delay(n, d).map(Some);
                }
            }
            Fault::Mtu(bytes) => run_all(&mtu_cmds(self.plan, n, bytes))?,
            Fault::Clear => {
                self.undelay(n, None);
                Cmd::nft_script(&n.host_ns, loss_ruleset(0)).run()?;
                run_all(&mtu_cmds(self.plan, n, UNDERLAY_MTU))?;
                self.heal(n)?;
            }
        }
        Ok(None)
    }

    fn heal(&self, n: &NodePlan) -> Result<(), FaultError> {
        run_all(&heal_cmds(self.plan, n))?;
        // Return once the node's eth0 has carrier again, so "healed" means traffic can flow.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let link = Cmd::ip(Some(&n.host_ns), ["link", "show", "eth0"]).run()?;
            if link.contains("LOWER_UP") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Peers that tried to reach the node during the cut hold FAILED neighbour entries
        // for it; flush them so traffic resumes without waiting for the retry timer.
        for node in &self.plan.nodes {
            let _ = Cmd::ip(Some(&node.host_ns), ["neigh", "flush", "nud", "failed"]).run();
        }
        Ok(())
    }

    fn delay(&self, n: &NodePlan, d: Duration) -> Result<Child, FaultError> {
        let log = self.dir.log_file(&format!("relay-{}", n.name));
        let relay_err = |reason: String| FaultError::Relay {
            node: n.name.clone(),
            reason,
            log: log.display().to_string(),
        };
        let log_file = fs::File::create(&log).map_err(|e| relay_err(e.to_string()))?;
        let log_file2 = log_file.try_clone().map_err(|e| relay_err(e.to_string()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &n.host_ns]);
        if realtime_available() {
            // Real-time priority keeps the delay exact on a busy machine: measured on 2 cores
            // with 6 busy loops, p50 +5.8 ms for a 2 ms delay without it, +2.01 ms with it.
            cmd.args(["chrt", "--fifo", RELAY_RT_PRIORITY]);
        }
        cmd.arg(self.lab_exe)
            .args(["relay", "--tun", DELAY_TUN, "--delay"])
            .arg(format!("{}us", d.as_micros()))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_file2);
        // Its own process group: a Ctrl-C in the terminal that ran `echomesh-lab delay`
        // must not stop it; `clear`, `down` and the demo's teardown do.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| relay_err(e.to_string()))?;
        let pid = child.id();
        let _ = fs::write(self.dir.relay_pid_file(&n.name), pid.to_string());
        // Wait for the TUN device before routing into it.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = fs::remove_file(self.dir.relay_pid_file(&n.name));
                return Err(relay_err(format!("it exited ({status})")));
            }
            if Cmd::ip(Some(&n.host_ns), ["link", "show", DELAY_TUN])
                .run()
                .is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                stop_child(&mut child, GRACE);
                let _ = fs::remove_file(self.dir.relay_pid_file(&n.name));
                return Err(relay_err("no TUN device after 5 s".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = run_all(&delay_route_cmds(self.plan, n)) {
            self.undelay(n, Some(&mut child));
            return Err(e.into());
        }
        Ok(child)
    }

    /// Removes node `n`'s delay: routing first (so traffic never goes into a dead TUN), then
    /// the relay (`child` if this process holds it, else by its PID file).
    pub fn undelay(&self, n: &NodePlan, child: Option<&mut Child>) {
        for c in undelay_route_cmds(n) {
            let _ = c.run();
        }
        stop_relay(self.dir, n, child);
    }
}

/// Stops node `n`'s relay: `child` if given, else the PID in its PID file (checked to still
/// be in the node's host namespace).
pub fn stop_relay(dir: &LabDir, n: &NodePlan, child: Option<&mut Child>) {
    let pid_file = dir.relay_pid_file(&n.name);
    match child {
        Some(c) => stop_child(c, GRACE),
        None => {
            if let Some(pid) = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                stop_pid_in_ns(pid, &n.host_ns, GRACE);
            }
        }
    }
    let _ = fs::remove_file(pid_file);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::IpFamily;
    use crate::naming::Prefix;

    fn plan() -> Plan {
        plan_of(IpFamily::Ipv4)
    }

    /// A 3-node lab plan of `family` under the prefix `eml1`.
    fn plan_of(family: IpFamily) -> Plan {
        let p: Prefix = "eml1".parse().expect("prefix");
        Plan::new(&p, 3, family).expect("plan")
    }

    #[test]
    fn parse_inputs() {
        assert_eq!(parse_percent("10").expect("10"), 10);
        assert_eq!(parse_percent("100%").expect("100"), 100);
        for bad in ["101", "-1", "2.5", "x", ""] {
            let err = parse_percent(bad).expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!("loss must be a percentage from 0 to 100, not {bad}")
            );
        }
        assert_eq!(parse_delay("2ms").expect("2ms"), Duration::from_millis(2));
        assert_eq!(
            parse_delay("1.5ms").expect("1.5ms"),
            Duration::from_micros(1500)
        );
        assert_eq!(parse_delay("0s").expect("0s"), Duration::ZERO);
        for (bad, why) in [
            ("2", "\"2\" has no unit: write it as 2ms or 2s"),
            ("-2ms", "\"-2ms\" is not a duration"),
            ("11s", "\"11s\" is longer than 10s"),
            ("", "\"\" is not a duration"),
        ] {
            let err = parse_delay(bad).expect_err(bad).to_string();
            assert!(
                err.starts_with("delay must be a duration from 0ms to 10s, like 2ms or 1.5ms: ")
                    && err.contains(why),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn cut_and_heal_act_on_the_fabric_port() {
        let plan = plan();
        let n = plan.node(3).expect("node3");
        assert_eq!(
            cut_cmds(&plan, n)[0].to_string(),
            "ip -n eml1-fabric link set n3 down"
        );
        assert_eq!(
            heal_cmds(&plan, n)[0].to_string(),
            "ip -n eml1-fabric link set n3 up"
        );
    }

    #[test]
    fn mtu_acts_on_the_fabric_port_within_1280_to_1500() {
        let plan = plan();
        let n = plan.node(3).expect("node3");
        assert_eq!(
            mtu_cmds(&plan, n, 1300)[0].to_string(),
            "ip -n eml1-fabric link set n3 mtu 1300"
        );
        assert_eq!(parse_mtu("1300").expect("1300"), 1300);
        assert_eq!(parse_mtu("1500").expect("1500"), 1500);
        for bad in ["1279", "1501", "9000", "-1", "1.3k", ""] {
            assert_eq!(
                parse_mtu(bad).expect_err(bad).to_string(),
                format!("mtu must be a whole number of bytes from 1280 to 1500, not {bad}")
            );
        }
    }

    #[test]
    fn loss_ruleset_is_idempotent_and_targets_eth0_egress() {
        let s = loss_ruleset(10);
        assert!(s.starts_with("table inet echomesh_lab\ndelete table inet echomesh_lab\n"));
        assert!(s.contains("hook postrouting"));
        assert!(s.contains("oifname \"eth0\" numgen random mod 100 < 10 counter drop"));
        assert!(loss_ruleset(100).contains("oifname \"eth0\" counter drop"));
        assert!(!loss_ruleset(100).contains("numgen"));
        assert_eq!(
            loss_ruleset(0),
            "table inet echomesh_lab\ndelete table inet echomesh_lab\n"
        );
    }

    /// The delay relay's routing on node2 of a 3-node lab of `family`, and its undoing, as the
    /// command lines they run.
    fn delay_routing_lines(family: IpFamily) -> (Vec<String>, Vec<String>) {
        let plan = plan_of(family);
        let n = plan.node(2).expect("node2");
        let lines = |cmds: Vec<Cmd>| cmds.iter().map(ToString::to_string).collect();
        (
            lines(delay_route_cmds(&plan, n)),
            lines(undelay_route_cmds(n)),
        )
    }

    #[test]
    fn delay_routing() {
        let (lines, undo) = delay_routing_lines(IpFamily::Ipv4);
        assert_eq!(
            lines,
            vec![
                "ip netns exec eml1-node2-host sysctl -qw net.ipv4.conf.dly0.rp_filter=0 net.ipv4.conf.dly0.accept_local=1",
                "ip -n eml1-node2-host link set dly0 up",
                "ip -n eml1-node2-host route replace default dev dly0 src 198.18.0.2 table 100",
                "ip -n eml1-node2-host rule add pref 100 iif dly0 lookup main",
                "ip -n eml1-node2-host rule add pref 101 to 198.18.0.0/24 lookup 100",
            ]
        );
        assert_eq!(
            undo,
            vec![
                "ip -n eml1-node2-host -4 rule del pref 101",
                "ip -n eml1-node2-host -4 rule del pref 100",
                "ip -n eml1-node2-host -4 route flush table 100",
            ]
        );
    }

    #[test]
    fn delay_routing_in_an_ipv6_only_lab() {
        let (lines, undo) = delay_routing_lines(IpFamily::Ipv6);
        assert_eq!(
            lines,
            vec![
                "ip -n eml1-node2-host link set dly0 up",
                "ip -n eml1-node2-host -6 route replace default dev dly0 src fd00:198:18::2 table 100",
                "ip -n eml1-node2-host -6 rule add pref 100 iif dly0 lookup main",
                "ip -n eml1-node2-host -6 rule add pref 101 to fd00:198:18::/64 lookup 100",
            ]
        );
        assert_eq!(
            undo,
            vec![
                "ip -n eml1-node2-host -6 rule del pref 101",
                "ip -n eml1-node2-host -6 rule del pref 100",
                "ip -n eml1-node2-host -6 route flush table 100",
            ]
        );
    }
}
