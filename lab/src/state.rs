//! Where a running lab is written down, so other `echomesh-lab` invocations can act on it.
//!
//! A lab owns one private directory, `<run dir>/<prefix>/` (mode 0700; the run dir is
//! `/run/echomesh-lab` unless `ECHOMESH_LAB_RUN_DIR` says otherwise). It holds `state.json`
//! (the plan, the aggregator's addresses, the binaries), the aggregator's unix socket, the
//! processes' logs and the delay relays' PID files. Fault commands from another terminal load
//! `state.json`; `down` removes the directory.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::naming::Prefix;
use crate::plan::Plan;

/// Default run directory.
pub const DEFAULT_RUN_DIR: &str = "/run/echomesh-lab";
/// Version of the state file's format.
pub const STATE_VERSION: u32 = 1;

/// Reading or writing lab state failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `state.json` is not ours or is damaged.
    #[error("{path} is not a valid lab state file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// No lab with this prefix.
    #[error("no running lab with prefix {0} (see `echomesh-lab list`)")]
    NotFound(String),
    /// No prefix given and no lab, or several.
    #[error("{0}")]
    Ambiguous(String),
    /// The directory exists already.
    #[error("{0} exists already")]
    Exists(PathBuf),
}

/// Where the aggregator of a lab listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatorInfo {
    /// gRPC (CLI, grpcurl) on loopback.
    pub grpc: SocketAddr,
    /// HTTP (metrics, web page) on loopback.
    pub http: SocketAddr,
    /// Unix socket the agents use.
    pub socket: PathBuf,
    /// PID of the aggregator.
    pub pid: u32,
}

/// What `state.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// Format version.
    pub version: u32,
    /// The topology.
    pub plan: Plan,
    /// PID of the `echomesh-lab` process that owns the lab (0: none, e.g. a test's topology).
    pub owner_pid: u32,
    /// Where the binaries were found.
    pub bin_dir: PathBuf,
    /// The aggregator, when one runs.
    pub aggregator: Option<AggregatorInfo>,
    /// True once the lab is fully built and its processes started.
    #[serde(default)]
    pub ready: bool,
}

/// The run directory: `ECHOMESH_LAB_RUN_DIR` or [`DEFAULT_RUN_DIR`].
pub fn run_dir() -> PathBuf {
    std::env::var_os("ECHOMESH_LAB_RUN_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR))
}

/// A lab's private directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabDir {
    path: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl LabDir {
    /// The directory of lab `prefix` under `run_dir` (not created).
    pub fn new(run_dir: &Path, prefix: &Prefix) -> Self {
        LabDir {
            path: run_dir.join(prefix.as_str()),
        }
    }

    /// Creates the directory (mode 0700); fails if it exists.
    pub fn create(&self) -> Result<(), StateError> {
        if let Some(parent) = self.path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(io_err(parent))?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists(self.path.clone()))
            }
            Err(e) => Err(io_err(&self.path)(e)),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True if it exists.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// `state.json`.
    pub fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }

    /// The aggregator's unix socket for agents.
    pub fn agent_socket(&self) -> PathBuf {
        self.path.join("aggregator.sock")
    }

    /// The shared agent token both the aggregator and the agents are given (mode 0600).
    pub fn agent_token(&self) -> PathBuf {
        self.path.join("agent-token")
    }

    /// Writes a fresh random agent token (mode 0600) unless one exists, and returns its path:
    /// the lab authenticates its agents like a bare-metal install would.
    pub fn ensure_agent_token(&self) -> Result<PathBuf, StateError> {
        use std::io::{Read as _, Write as _};
        let path = self.agent_token();
        if path.exists() {
            return Ok(path);
        }
        let mut raw = [0u8; 32];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut raw))
            .map_err(io_err(Path::new("/dev/urandom")))?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(token.as_bytes()))
            .map_err(io_err(&path))?;
        Ok(path)
    }

    /// Log file of process `name`.
    pub fn log_file(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.log"))
    }

    /// PID file of node `node`'s delay relay.
    pub fn relay_pid_file(&self, node: &str) -> PathBuf {
        self.path.join(format!("relay-{node}.pid"))
    }

    /// Writes `state.json` atomically.
    pub fn save(&self, state: &LabState) -> Result<(), StateError> {
        let file = self.state_file();
        let tmp = self.path.join("state.json.tmp");
        let text = serde_json::to_string_pretty(state).map_err(|source| StateError::Parse {
            path: file.clone(),
            source,
        })?;
        fs::write(&tmp, text).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &file).map_err(io_err(&file))
    }

    /// Reads `state.json`.
    pub fn load(&self) -> Result<LabState, StateError> {
        let file = self.state_file();
        let text = fs::read_to_string(&file).map_err(io_err(&file))?;
        serde_json::from_str(&text).map_err(|source| StateError::Parse { path: file, source })
    }

    /// Removes the directory and everything in it (missing is fine).
    pub fn remove(&self) -> Result<(), StateError> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.path)(e)),
        }
    }
}

/// Prefixes of the labs that have a directory under `run_dir`.
pub fn list(run_dir: &Path) -> Result<Vec<Prefix>, StateError> {
    let entries = match fs::read_dir(run_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(run_dir)(e)),
    };
    let mut out: Vec<Prefix> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    out.sort();
    Ok(out)
}

/// The lab to act on: `prefix` if given, else the only lab under `run_dir`.
pub fn resolve(run_dir: &Path, prefix: Option<&Prefix>) -> Result<LabDir, StateError> {
    match prefix {
        Some(p) => {
            let dir = LabDir::new(run_dir, p);
            if dir.state_file().exists() {
                Ok(dir)
            } else {
                Err(StateError::NotFound(p.to_string()))
            }
        }
        None => {
            let labs = list(run_dir)?;
            match labs.as_slice() {
                [one] => Ok(LabDir::new(run_dir, one)),
                [] => Err(StateError::Ambiguous(
                    "no lab is running (start one with `echomesh-lab demo`)".into(),
                )),
                many => Err(StateError::Ambiguous(format!(
                    "{} labs are running ({}); choose one with --prefix",
                    many.len(),
                    many.iter()
                        .map(Prefix::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_run_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "echomesh-lab-state-{tag}-{}-{}",
            std::process::id(),
            Prefix::random()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_agent_token_is_random_private_and_kept_across_restarts() {
        use std::os::unix::fs::PermissionsExt as _;
        let run = tmp_run_dir("token");
        let p: Prefix = "emltest3".parse().expect("prefix");
        let dir = LabDir::new(&run, &p);
        dir.create().expect("create");
        let path = dir.ensure_agent_token().expect("token");
        let token = fs::read_to_string(&path).expect("read");
        assert_eq!(token.len(), 64, "32 random bytes in hex");
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A restarted aggregator keeps the token its agents already hold.
        assert_eq!(dir.ensure_agent_token().expect("again"), path);
        assert_eq!(fs::read_to_string(&path).expect("read"), token);
        let other = LabDir::new(&run, &"emltest4".parse().expect("prefix"));
        other.create().expect("create");
        let t2 = fs::read_to_string(other.ensure_agent_token().expect("token")).expect("read");
        assert_ne!(t2, token, "each lab its own token");
        let _ = fs::remove_dir_all(&run);
    }

    #[test]
    fn save_load_list_resolve_remove() {
        let run = tmp_run_dir("roundtrip");
        let p: Prefix = "emltest1".parse().expect("prefix");
        let dir = LabDir::new(&run, &p);
        dir.create().expect("create");
        assert!(matches!(dir.create(), Err(StateError::Exists(_))));
        let state = LabState {
            version: STATE_VERSION,
            plan: Plan::new(&p, 3, crate::family::IpFamily::Ipv4).expect("plan"),
            owner_pid: 42,
            bin_dir: "/bin".into(),
            aggregator: None,
            ready: true,
        };
        dir.save(&state).expect("save");
        assert_eq!(dir.load().expect("load"), state);
        assert_eq!(list(&run).expect("list"), vec![p.clone()]);
        assert_eq!(resolve(&run, None).expect("only one"), dir);
        assert_eq!(resolve(&run, Some(&p)).expect("by prefix"), dir);

        let other: Prefix = "emltest2".parse().expect("prefix");
        let err = resolve(&run, Some(&other)).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "no running lab with prefix emltest2 (see `echomesh-lab list`)"
        );
        LabDir::new(&run, &other).create().expect("second");
        let err = resolve(&run, None).expect_err("two labs");
        assert_eq!(
            err.to_string(),
            "2 labs are running (emltest1, emltest2); choose one with --prefix"
        );

        dir.remove().expect("remove");
        dir.remove().expect("remove twice is fine");
        let _ = fs::remove_dir_all(&run);
        let err = resolve(&run, None).expect_err("none");
        assert!(err.to_string().contains("no lab is running"), "{err}");
    }

    #[test]
    fn damaged_state_file_is_reported() {
        let run = tmp_run_dir("damaged");
        let p: Prefix = "emltest3".parse().expect("prefix");
        let dir = LabDir::new(&run, &p);
        dir.create().expect("create");
        fs::write(dir.state_file(), "{not json").expect("write");
        let err = dir.load().expect_err("damaged");
        assert!(
            err.to_string().contains("is not a valid lab state file"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&run);
    }
}
