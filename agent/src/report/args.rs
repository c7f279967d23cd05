//! The flags of `echomesh-agent run` and the ways it can fail, in one place so the binary, the
//! lab (which spawns agents with these flags) and the manifests (which set their variables) agree.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use echomesh_proto::network::parse_agent_network;
use echomesh_proto::v1::Network;
use echomesh_runtime::parse_duration;

use crate::prober::EngineError;

/// Most addresses one agent announces.
pub const MAX_ADDRESSES: usize = 16;

/// Longest `--zone` (the aggregator refuses a longer one).
pub const MAX_ZONE: usize = 63;

/// `--zone`: at most [`MAX_ZONE`] bytes without control characters, as the aggregator checks.
fn parse_zone(s: &str) -> Result<String, String> {
    if s.len() > MAX_ZONE || s.chars().any(char::is_control) {
        return Err(format!(
            "a zone is at most {MAX_ZONE} printable characters, got {} bytes: {:?}",
            s.len(),
            s.chars().take(64).collect::<String>()
        ));
    }
    Ok(s.to_string())
}

/// Arguments of `echomesh-agent run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Aggregator URL: http://HOST:PORT, https://HOST:PORT or unix:///path/to/socket.
    #[arg(long, env = "ECHOMESH_AGGREGATOR")]
    pub aggregator: String,
    /// This node's name (from the downward API in Kubernetes).
    #[arg(long, env = "ECHOMESH_NODE")]
    pub node: String,
    /// This pod's name.
    #[arg(long, env = "ECHOMESH_POD", default_value = "")]
    pub pod: String,
    /// This node's failure domain (like `topology.kubernetes.io/zone`), for agents outside
    /// Kubernetes: the budget pinglist spreads fast probers across zones and the diagnosis names
    /// a zone cut off from the others. Ignored by an aggregator that watches Kubernetes (the
    /// Node's label wins). At most 63 printable characters.
    #[arg(long, env = "ECHOMESH_ZONE", default_value = "", value_parser = parse_zone)]
    pub zone: String,
    /// The network this agent probes from: pod or host.
    #[arg(long, env = "ECHOMESH_NETWORK", value_parser = parse_agent_network)]
    pub network: Network,
    /// This agent's addresses, which peers probe (repeat or comma-separate; 1 to 16).
    #[arg(
        long = "address",
        env = "ECHOMESH_ADDRESS",
        value_delimiter = ',',
        required = true
    )]
    pub addresses: Vec<IpAddr>,
    /// Unacknowledged reports kept for replay (oldest dropped first).
    #[arg(long, env = "ECHOMESH_REPLAY_BUFFER", default_value_t = 300)]
    pub replay_buffer: usize,
    /// Most encoded bytes of unacknowledged reports kept for replay (oldest dropped first;
    /// reports grow with the pinglist, so the count alone does not bound memory).
    #[arg(long, env = "ECHOMESH_REPLAY_BUFFER_BYTES", default_value_t = 64 << 20)]
    pub replay_buffer_bytes: usize,
    /// Longest wait between reconnect attempts, e.g. `30s` (at least 100ms).
    #[arg(long, env = "ECHOMESH_MAX_BACKOFF", value_name = "DURATION", default_value = "30s",
          value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// Send the token in this file on every session (`authorization: Bearer <token>`), re-read
    /// at each connect: the shared token outside Kubernetes, the projected ServiceAccount token
    /// (audience `echomesh`) inside it.
    #[arg(long, env = "ECHOMESH_AGENT_TOKEN_FILE")]
    pub agent_token_file: Option<std::path::PathBuf>,
    /// Check an `https://` aggregator's certificate against this CA (PEM), re-read at every
    /// connect; without it, `https://` uses the system's root certificates.
    #[arg(long, env = "ECHOMESH_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Where to serve /metrics and /healthz.
    /// `:7072` is every interface of both address families.
    #[arg(long, env = "ECHOMESH_HTTP_LISTEN", default_value = ":7072",
          value_parser = echomesh_runtime::listen::parse_listen)]
    pub http_listen: SocketAddr,
    /// What an assignment may make this agent probe (`--allow-cidr`, `--max-targets`,
    /// `--max-pps`).
    #[command(flatten)]
    pub guard: super::guard::GuardArgs,
}

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The aggregator URL is unusable.
    #[error(transparent)]
    Url(#[from] echomesh_proto::url::UrlError),
    /// The probe engine could not start (e.g. no CAP_NET_RAW).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Too many or no addresses.
    #[error("give 1 to 16 --address values, got {0}")]
    Addresses(usize),
    /// The metrics port could not be bound.
    #[error("cannot serve /metrics on {addr}: {source}")]
    Bind {
        /// The --http-listen address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_is_a_short_printable_name() {
        assert_eq!(parse_zone("eu-west-1a"), Ok("eu-west-1a".into()));
        assert_eq!(parse_zone(""), Ok(String::new()));
        let long = parse_zone(&"z".repeat(64)).expect_err("64 bytes");
        assert!(
            long.contains("at most 63 printable characters, got 64 bytes"),
            "{long}"
        );
        let ctl = parse_zone("zone\u{1b}[2J").expect_err("escape");
        assert!(ctl.contains("\\u{1b}"), "escaped in the message: {ctl}");
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        let base = [
            "echomesh-agent",
            "--aggregator",
            "http://127.0.0.1:1",
            "--node",
            "node-a",
            "--network",
            "pod",
            "--address",
            "10.0.0.1",
        ];
        <Cli as clap::Parser>::try_parse_from(base.iter().chain(extra))
    }

    #[test]
    fn the_zone_flag_reaches_the_hello_and_a_bad_one_stops_start_up() {
        let cli = parse(&["--zone", "eu-west-1a"]).expect("flags");
        let hello =
            crate::report::wire::hello(&cli.run, 1, std::time::SystemTime::now()).expect("hello");
        assert_eq!(hello.zone, "eu-west-1a");
        let none = parse(&[]).expect("flags");
        assert_eq!(none.run.zone, "");
        let err = parse(&["--zone", "a\nb"])
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("--zone") && err.contains("printable"), "{err}");
    }
}
