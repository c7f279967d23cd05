//! Running `ip`, `nft` and `sysctl`, one command line at a time.
//!
//! The lab drives the kernel through the standard tools rather than netlink so that every step
//! it takes can be printed, copied into a shell and re-run by a person debugging a lab. Plans are
//! lists of [`Cmd`] values built without touching the system (and unit-tested as text); only
//! [`Cmd::run`] executes them.

use std::fmt;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// One command line: a program, its arguments and optional standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    /// The program (looked up in `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Text fed to standard input (nft rulesets).
    pub stdin: Option<String>,
}

/// A command that could not be run or failed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started.
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why.
        source: std::io::Error,
    },
    /// The program exited non-zero.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Exit status as text.
        status: String,
        /// What it printed on standard error (trimmed).
        stderr: String,
    },
}

impl Cmd {
    /// A command from a program and its arguments.
    pub fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }

    /// `ip [-n NS] ARGS...` (`ns` = None: the current namespace).
    pub fn ip<I, S>(ns: Option<&str>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all: Vec<String> = Vec::new();
        if let Some(ns) = ns {
            all.push("-n".into());
            all.push(ns.into());
        }
        all.extend(args.into_iter().map(Into::into));
        Cmd::new("ip", all)
    }

    /// `ip netns exec NS PROGRAM ARGS...`.
    pub fn in_ns<I, S>(ns: &str, program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all: Vec<String> = vec!["netns".into(), "exec".into(), ns.into(), program.into()];
        all.extend(args.into_iter().map(Into::into));
        Cmd::new("ip", all)
    }

    /// `sysctl -qw KEY=VALUE...` inside `ns`.
    pub fn sysctl(ns: &str, settings: &[(&str, &str)]) -> Self {
        let mut args = vec!["-qw".to_string()];
        args.extend(settings.iter().map(|(k, v)| format!("{k}={v}")));
        Cmd::in_ns(ns, "sysctl", args)
    }

    /// `nft -f -` inside `ns`, with `ruleset` on standard input.
    pub fn nft_script(ns: &str, ruleset: String) -> Self {
        let mut c = Cmd::in_ns(ns, "nft", ["-f", "-"]);
        c.stdin = Some(ruleset);
        c
    }

    /// Runs the command and returns its standard output.
    pub fn run(&self) -> Result<String, CmdError> {
        tracing::debug!(cmd = %self, "run");
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let spawn_err = |source| CmdError::Spawn {
            cmd: self.to_string(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_err)?;
        if let (Some(text), Some(mut pipe)) = (&self.stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).map_err(spawn_err)?;
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(CmdError::Failed {
                cmd: self.to_string(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"') {
                write!(f, " {a:?}")?;
            } else {
                write!(f, " {a}")?;
            }
        }
        if self.stdin.is_some() {
            f.write_str(" <<ruleset")?;
        }
        Ok(())
    }
}

/// Runs every command in order, stopping at the first failure.
pub fn run_all(cmds: &[Cmd]) -> Result<(), CmdError> {
    cmds.iter().try_for_each(|c| c.run().map(drop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_ip_lines() {
        assert_eq!(
            Cmd::ip(Some("eml1-fabric"), ["link", "set", "br0", "up"]).to_string(),
            "ip -n eml1-fabric link set br0 up"
        );
        assert_eq!(
            Cmd::ip(None, ["netns", "list"]).to_string(),
            "ip netns list"
        );
        assert_eq!(
            Cmd::in_ns("ns", "nft", ["list", "tables"]).to_string(),
            "ip netns exec ns nft list tables"
        );
        assert_eq!(
            Cmd::sysctl("ns", &[("net.ipv4.ip_forward", "1")]).to_string(),
            "ip netns exec ns sysctl -qw net.ipv4.ip_forward=1"
        );
        assert_eq!(
            Cmd::nft_script("ns", "table inet x {}".into()).to_string(),
            "ip netns exec ns nft -f - <<ruleset"
        );
    }

    #[test]
    fn failure_names_the_command_and_its_stderr() {
        let err = Cmd::new("sh", ["-c", "echo boom >&2; exit 3"])
            .run()
            .expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("`sh -c \"echo boom >&2; exit 3\"`"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = Cmd::new("/nonexistent/echomesh-none", Vec::<String>::new())
            .run()
            .expect_err("must fail");
        assert!(matches!(err, CmdError::Spawn { .. }), "{err}");
    }

    #[test]
    fn stdin_is_fed() {
        let mut c = Cmd::new("cat", Vec::<String>::new());
        c.stdin = Some("hello".into());
        assert_eq!(c.run().expect("cat"), "hello");
    }
}
