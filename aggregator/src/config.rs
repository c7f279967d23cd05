//! The aggregator's configuration: this struct *is* the documentation of every flag.
//!
//! Every flag is also an `ECHOMESH_*` environment variable, so the Deployment can configure it
//! without a command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use echomesh_runtime::parse_duration;
use echomesh_runtime::telemetry::LogFormat;

use crate::discovery::model::HostAddressType;
use crate::graph::{GraphConfig, Thresholds};
use crate::ingest::IngestConfig;
use crate::policy::{BudgetConfig, PolicyName};

/// `echomesh-aggregator` flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "echomesh-aggregator",
    version,
    about = "echomesh aggregator: the live cluster connectivity graph"
)]
pub struct Config {
    /// gRPC listen address for agents and readers (`:7070` in Kubernetes: every interface, both families).
    #[arg(long, env = "ECHOMESH_GRPC_LISTEN", default_value = "127.0.0.1:7070", value_parser = parse_listen)]
    pub grpc_listen: SocketAddr,
    /// HTTP listen address for /metrics, the heatmap page, its JSON API, /healthz and /readyz
    /// (":PORT" means all interfaces).
    #[arg(long, env = "ECHOMESH_HTTP_LISTEN", default_value = ":7071", value_parser = parse_listen)]
    pub http_listen: SocketAddr,
    /// Also serve gRPC on this unix socket (for agents on the same host).
    #[arg(long, env = "ECHOMESH_AGENT_SOCKET")]
    pub agent_socket: Option<PathBuf>,
    /// Time between probes to one target, told to agents.
    #[arg(long, env = "ECHOMESH_PROBE_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub probe_interval: Duration,
    /// A probe without a reply after this counts as lost.
    #[arg(long, env = "ECHOMESH_PROBE_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub probe_timeout: Duration,
    /// Time between agent reports.
    #[arg(long, env = "ECHOMESH_REPORT_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub report_interval: Duration,
    /// Consecutive losses after which an agent alerts immediately.
    /// Each probe counts once it has gone unanswered for 200 ms (longer on slow paths); 6 in a row
    /// at 10 Hz is DOWN within a second of a cut, with a false alarm under 5 % random loss about
    /// once per 11,000 edge-ten-minutes (docs/aggregator.md).
    #[arg(long, env = "ECHOMESH_DOWN_AFTER", default_value_t = 6)]
    pub down_after: u32,
    /// ICMP payload sizes agents alternate, comma-separated: a small one and one near the path MTU
    /// (every probe has don't-fragment set), so an MTU black hole shows as the large ones failing;
    /// a single size turns that off.
    #[arg(
        long,
        env = "ECHOMESH_PAYLOAD_SIZES",
        default_value = "56,1372",
        value_delimiter = ','
    )]
    pub payload_sizes: Vec<u32>,
    /// Window loss (percent) from which an edge is DEGRADED.
    #[arg(long, env = "ECHOMESH_DEGRADED_LOSS_PCT", default_value_t = 1.0)]
    pub degraded_loss_pct: f64,
    /// Window loss (percent) from which an edge is DOWN.
    #[arg(long, env = "ECHOMESH_DOWN_LOSS_PCT", default_value_t = 100.0)]
    pub down_loss_pct: f64,
    /// Window p99 from which an edge is DEGRADED.
    #[arg(long, env = "ECHOMESH_DEGRADED_P99", default_value = "100ms", value_parser = parse_duration)]
    pub degraded_p99: Duration,
    /// Consecutive worse windows before an edge's state gets worse.
    #[arg(long, env = "ECHOMESH_RAISE_AFTER", default_value_t = 2)]
    pub raise_after: u8,
    /// Consecutive better windows before an edge's state gets better.
    #[arg(long, env = "ECHOMESH_CLEAR_AFTER", default_value_t = 3)]
    pub clear_after: u8,
    /// Report intervals without a report before an agent's edges go UNKNOWN.
    #[arg(long, env = "ECHOMESH_STALE_AFTER_REPORTS", default_value_t = 3)]
    pub stale_after_reports: u32,
    /// A disconnected agent and its edges are forgotten after this long.
    #[arg(long, env = "ECHOMESH_AGENT_TTL", default_value = "10m", value_parser = parse_duration)]
    pub agent_ttl: Duration,
    /// Quiet time after agents join or leave before pinglists are recomputed.
    #[arg(long, env = "ECHOMESH_ASSIGN_DEBOUNCE", default_value = "200ms", value_parser = parse_duration)]
    pub assign_debounce: Duration,
    /// Who probes whom: `budget` is the full mesh while an agent's list fits in
    /// --probe-budget-pps, and beyond it --fast-probers full-rate probers per agent and network
    /// plus a rotation that probes every pair once per --coverage-period; `full-mesh` always
    /// probes every pair (N² probes).
    #[arg(long, env = "ECHOMESH_PINGLIST", value_enum, default_value_t = PolicyName::Budget)]
    pub pinglist: PolicyName,
    /// Probes per second one agent may send (--pinglist budget); its targets are this times
    /// --probe-interval (2000 at 100ms: 200 targets).
    #[arg(long, env = "ECHOMESH_PROBE_BUDGET_PPS", default_value_t = 2000)]
    pub probe_budget_pps: u32,
    /// Agents of its own network on other nodes that probe each agent at the full rate
    /// (--pinglist budget), three quarters in its zone when zones are known.
    #[arg(long, env = "ECHOMESH_FAST_PROBERS", default_value_t = 8)]
    pub fast_probers: u32,
    /// Every directed pair is probed at least once within this (--pinglist budget).
    #[arg(long, env = "ECHOMESH_COVERAGE_PERIOD", default_value = "15m", value_parser = parse_duration)]
    pub coverage_period: Duration,
    /// Largest gRPC message accepted from an agent, in bytes (larger: RESOURCE_EXHAUSTED). Keep
    /// it near the largest real report (about 100 bytes per target: 4 MiB is 40,000 targets);
    /// what a message may decode into is bounded by `--max-report-entries`.
    #[arg(long, env = "ECHOMESH_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Most agent sessions at once (two per node: pod and host network); a Hello beyond it is
    /// refused with RESOURCE_EXHAUSTED. Memory grows with the square of the agents.
    #[arg(long, env = "ECHOMESH_MAX_AGENTS", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_agents: u32,
    /// Most entries a Report may carry (default: `--max-agents` × 16, the largest assignment:
    /// every other agent's addresses, at most 16 each). Counted on the wire bytes before the
    /// Report is decoded, so decoding memory stays bounded by this times one entry rather than by
    /// the message size; more: RESOURCE_EXHAUSTED.
    #[arg(long, env = "ECHOMESH_MAX_REPORT_ENTRIES",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_report_entries: Option<u32>,
    /// Most open connections per port (gRPC, HTTP); more are closed at once.
    #[arg(long, env = "ECHOMESH_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// A connection from which nothing was read for this long is closed (HTTP/2 peers answer
    /// the aggregator's keepalive pings every 10s, so live ones never are).
    #[arg(long, env = "ECHOMESH_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Most concurrent WatchEvents subscribers.
    #[arg(long, env = "ECHOMESH_MAX_WATCHERS", default_value_t = 64)]
    pub max_watchers: usize,
    /// How many of the worst unhealthy edges get their own series on /metrics.
    #[arg(long, env = "ECHOMESH_METRICS_TOP_K", default_value_t = 20)]
    pub metrics_top_k: usize,
    /// Export per-edge series on /metrics (n² series: only for small clusters).
    #[arg(long, env = "ECHOMESH_METRICS_EDGE_SERIES")]
    pub metrics_edge_series: bool,
    /// Most edges exported with --metrics-edge-series (the worst first).
    #[arg(
        long,
        env = "ECHOMESH_METRICS_MAX_EDGE_SERIES",
        default_value_t = 10_000
    )]
    pub metrics_max_edge_series: usize,
    /// Most nodes with per-node series on /metrics (64 series per node with both networks);
    /// beyond it the nodes with the highest loss are kept, then by name. 0: every node.
    #[arg(long, env = "ECHOMESH_METRICS_MAX_NODES", default_value_t = 0)]
    pub metrics_max_nodes: usize,
    /// Discover nodes and agent pods from the Kubernetes API (in-cluster config, else kubeconfig)
    /// and compute pinglists from them; without it, pinglists are the full mesh of connected agents.
    #[arg(long, env = "ECHOMESH_KUBERNETES")]
    pub kubernetes: bool,
    /// Namespace of the agent pods ("" watches every namespace; needs the ClusterRole either way).
    #[arg(long, env = "ECHOMESH_NAMESPACE", default_value = "echomesh")]
    pub namespace: String,
    /// Label selector of the agent pods (both DaemonSets, pod and host network).
    #[arg(long, env = "ECHOMESH_AGENT_SELECTOR", default_value = "app.kubernetes.io/name=echomesh-agent", value_parser = parse_selector)]
    pub agent_selector: String,
    /// Quiet time after a Kubernetes event before the cluster model is rebuilt.
    #[arg(long, env = "ECHOMESH_DISCOVERY_DEBOUNCE", default_value = "100ms", value_parser = parse_duration)]
    pub discovery_debounce: Duration,
    /// Which node address is probed as a node's host address: the first address of this type
    /// per family in the Node's `status.addresses` (InternalIP or ExternalIP).
    #[arg(long, env = "ECHOMESH_HOST_ADDRESS_TYPE", value_enum, ignore_case = true, default_value_t = HostAddressType::InternalIp)]
    pub host_address_type: HostAddressType,
    /// Agents must send the token in this file (`authorization: Bearer <token>`); re-read when it
    /// changes. For the lab and bare metal; in Kubernetes use --agent-token-review.
    #[arg(
        long,
        env = "ECHOMESH_AGENT_TOKEN_FILE",
        conflicts_with = "agent_token_review"
    )]
    pub agent_token_file: Option<PathBuf>,
    /// Agents must send their projected ServiceAccount token (audience `echomesh`); each is
    /// verified with a TokenReview and bound to the agent pod, node, network and addresses it
    /// names. Needs --kubernetes.
    #[arg(long, env = "ECHOMESH_AGENT_TOKEN_REVIEW", requires = "kubernetes")]
    pub agent_token_review: bool,
    /// A node the diagnosis blames (the node, its pod or its host network) continuously for this
    /// long gets the Node condition `EchomeshNetworkProblem=True` and a Warning Event; False again
    /// when healed. Unset: nothing is written. Within 10s..=24h, e.g. `5m`. Needs --kubernetes and
    /// the RBAC of deploy/components/node-conditions.
    #[arg(long, env = "ECHOMESH_NODE_CONDITION_AFTER", requires = "kubernetes", value_parser = crate::node_conditions::parse_after)]
    pub node_condition_after: Option<Duration>,
    /// Serve gRPC over TLS with this certificate chain (PEM); reloaded when the file changes.
    /// Needs --tls-key. Agents and the CLI then use `https://` and --tls-ca.
    #[arg(long, env = "ECHOMESH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM); reloaded when the file changes.
    #[arg(long, env = "ECHOMESH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log filter, e.g. `info` or `echomesh_aggregator=debug,info`.
    #[arg(long = "log", env = "ECHOMESH_LOG", default_value = "info")]
    pub log: String,
    /// Log format: human text or one JSON object per line.
    #[arg(long, env = "ECHOMESH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// A configuration for tests and embedding: loopback, ephemeral ports.
    #[must_use]
    pub fn local() -> Self {
        <Self as clap::Parser>::parse_from([
            "echomesh-aggregator",
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
    }

    /// Checks relations between flags that clap cannot see, saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let pct = |v: f64| (0.0..=100.0).contains(&v);
        if !pct(self.degraded_loss_pct) || !pct(self.down_loss_pct) {
            return Err("--degraded-loss-pct and --down-loss-pct must be within 0..=100".into());
        }
        if self.degraded_loss_pct > self.down_loss_pct {
            return Err(format!(
                "--degraded-loss-pct ({}) must not exceed --down-loss-pct ({})",
                self.degraded_loss_pct, self.down_loss_pct
            ));
        }
        if self.report_interval < Duration::from_millis(100) {
            return Err(format!(
                "--report-interval must be at least 100ms, got {:?}",
                self.report_interval
            ));
        }
        if self.probe_interval.is_zero() || self.probe_timeout.is_zero() {
            return Err("--probe-interval and --probe-timeout must be greater than zero".into());
        }
        if self.stale_after_reports == 0 || self.raise_after == 0 || self.clear_after == 0 {
            return Err(
                "--stale-after-reports, --raise-after and --clear-after must be at least 1".into(),
            );
        }
        // Agents refuse assignments outside these (their guard), so refusing them here says so
        // at start-up instead of in every agent's log.
        let ms = Duration::from_millis(1);
        for (flag, v, max) in [
            (
                "--probe-interval",
                self.probe_interval,
                Duration::from_secs(60),
            ),
            (
                "--probe-timeout",
                self.probe_timeout,
                Duration::from_secs(60),
            ),
        ] {
            if v < ms || v > max {
                return Err(format!(
                    "{flag} must be within 1ms..={}s (agents are told whole milliseconds), got {v:?}",
                    max.as_secs()
                ));
            }
        }
        if self.idle_timeout < Duration::from_secs(1) {
            return Err(format!(
                "--idle-timeout must be at least 1s, got {:?}",
                self.idle_timeout
            ));
        }
        if self.report_interval > Duration::from_secs(600) {
            return Err(format!(
                "--report-interval must be at most 600s, got {:?}",
                self.report_interval
            ));
        }
        if !(1..=10_000).contains(&self.down_after) {
            return Err(format!(
                "--down-after must be within 1..=10000, got {}",
                self.down_after
            ));
        }
        check_payload_sizes(&self.payload_sizes)?;
        if self.pinglist == PolicyName::Budget {
            self.budget().validate()?;
        }
        if self.max_message_bytes < 1024 {
            return Err("--max-message-bytes must be at least 1024".into());
        }
        Ok(())
    }

    /// The most entries a Report may carry: `--max-report-entries`, or `--max-agents` × the most
    /// addresses a Hello may announce.
    #[must_use]
    pub fn report_entry_cap(&self) -> usize {
        self.max_report_entries.map_or(
            self.max_agents as usize * crate::ingest::hello::MAX_ADDRESSES,
            |n| n as usize,
        )
    }

    /// The graph part.
    #[must_use]
    pub fn graph(&self) -> GraphConfig {
        GraphConfig {
            thresholds: Thresholds {
                degraded_loss_pct: self.degraded_loss_pct,
                down_loss_pct: self.down_loss_pct,
                degraded_p99: self.degraded_p99,
                raise_after: self.raise_after,
                clear_after: self.clear_after,
            },
            stale_after_intervals: self.stale_after_reports,
            agent_ttl: self.agent_ttl,
        }
    }

    /// The metrics part.
    #[must_use]
    pub fn metrics(&self) -> crate::http::metrics::MetricsConfig {
        crate::http::metrics::MetricsConfig {
            top_k: self.metrics_top_k,
            edge_series: self.metrics_edge_series,
            max_edge_series: self.metrics_max_edge_series,
            max_nodes: self.metrics_max_nodes,
        }
    }

    /// The Kubernetes discovery part.
    #[must_use]
    pub fn discovery(&self) -> crate::discovery::DiscoveryConfig {
        crate::discovery::DiscoveryConfig {
            namespace: self.namespace.clone(),
            agent_selector: self.agent_selector.clone(),
            debounce: self.discovery_debounce,
            host_address_type: self.host_address_type,
        }
    }

    /// The budget pinglist's numbers.
    #[must_use]
    pub fn budget(&self) -> BudgetConfig {
        BudgetConfig {
            budget_pps: self.probe_budget_pps,
            fast_probers: self.fast_probers,
            probe_interval: self.probe_interval,
            coverage_period: self.coverage_period,
        }
    }

    /// The ingest part.
    #[must_use]
    pub fn ingest(&self) -> IngestConfig {
        IngestConfig {
            probe_interval: self.probe_interval,
            probe_timeout: self.probe_timeout,
            report_interval: self.report_interval,
            down_after: self.down_after,
            payload_sizes: self.payload_sizes.clone(),
            assign_debounce: self.assign_debounce,
            max_agents: self.max_agents as usize,
            hello_zones: !self.kubernetes,
            coverage_period: self.coverage_period,
            ..IngestConfig::default()
        }
    }
}

pub use echomesh_runtime::listen::parse_listen;

/// Smallest payload an agent sends: the signed 32-byte probe stamp.
pub const MIN_PAYLOAD: u32 = 32;
/// Largest payload: an IPv4 datagram of 65,535 bytes less its 28 bytes of headers.
pub const MAX_PAYLOAD: u32 = 65_507;

/// One or two payload sizes, each an agent can send, the second larger than the first.
pub fn check_payload_sizes(sizes: &[u32]) -> Result<(), String> {
    if sizes.is_empty() || sizes.len() > 2 {
        return Err(format!(
            "--payload-sizes takes one or two sizes (a small one and one near the path MTU), got {}",
            sizes.len()
        ));
    }
    if let Some(bad) = sizes
        .iter()
        .find(|s| !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(s))
    {
        return Err(format!(
            "--payload-sizes: {bad} is outside {MIN_PAYLOAD}..={MAX_PAYLOAD} bytes"
        ));
    }
    if sizes.len() == 2 && sizes[1] <= sizes[0] {
        return Err(format!(
            "--payload-sizes: the second size ({}) must be larger than the first ({})",
            sizes[1], sizes[0]
        ));
    }
    Ok(())
}

/// Checks a label selector (`k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`,
/// comma-separated), so a typo exits 2 at start instead of a 400 from every list call.
pub fn parse_selector(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("{s:?} is not a label selector: {why}");
    let key_ok = |k: &str| {
        !k.is_empty()
            && k.len() <= 317
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
    };
    let value_ok = |v: &str| {
        v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(bad("unbalanced parentheses"));
        }
    }
    if depth != 0 {
        return Err(bad("unbalanced parentheses"));
    }
    terms.push(&s[start..]);
    for t in terms.iter().map(|t| t.trim()) {
        let ok = if let Some((k, rest)) = t.split_once(" notin ").or_else(|| t.split_once(" in ")) {
            let rest = rest.trim();
            key_ok(k.trim())
                && rest.starts_with('(')
                && rest.ends_with(')')
                && rest[1..rest.len() - 1]
                    .split(',')
                    .all(|v| value_ok(v.trim()))
        } else if let Some((k, v)) = t
            .split_once("!=")
            .or_else(|| t.split_once("=="))
            .or_else(|| t.split_once('='))
        {
            key_ok(k.trim()) && value_ok(v.trim())
        } else {
            key_ok(t.strip_prefix('!').unwrap_or(t).trim())
        };
        if !ok {
            return Err(bad(&format!("cannot read {t:?}")));
        }
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn durations_and_listen_addresses() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("1000").is_err());
        assert_eq!(
            parse_listen(":7071"),
            Ok("[::]:7071".parse().expect("addr"))
        );
        assert!(parse_listen("nope").is_err());
    }

    #[test]
    fn inconsistent_flags_are_refused_with_the_reason() {
        let c = Config::try_parse_from(["x", "--degraded-loss-pct", "50", "--down-loss-pct", "10"])
            .expect("parses");
        assert_eq!(
            c.validate(),
            Err("--degraded-loss-pct (50) must not exceed --down-loss-pct (10)".into())
        );
        let c = Config::try_parse_from(["x", "--report-interval", "10ms"]).expect("parses");
        assert!(c.validate().is_err());
        for (flag, v, want) in [
            (
                "--probe-interval",
                "1us",
                "--probe-interval must be within 1ms..=60s (agents are told whole milliseconds), got 1µs",
            ),
            (
                "--probe-interval",
                "2h",
                "--probe-interval must be within 1ms..=60s (agents are told whole milliseconds), got 7200s",
            ),
            (
                "--probe-timeout",
                "1h",
                "--probe-timeout must be within 1ms..=60s (agents are told whole milliseconds), got 3600s",
            ),
            (
                "--report-interval",
                "1h",
                "--report-interval must be at most 600s, got 3600s",
            ),
            (
                "--down-after",
                "0",
                "--down-after must be within 1..=10000, got 0",
            ),
        ] {
            let c = Config::try_parse_from(["x", flag, v]).expect("parses");
            assert_eq!(c.validate(), Err(want.into()), "{flag} {v}");
        }
        let e = Config::try_parse_from(["x", "--max-agents", "0"]).expect_err("bad");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(Config::local().validate(), Ok(()));
    }

    #[test]
    fn auth_and_tls_flags_come_in_valid_combinations() {
        let ok = Config::try_parse_from(["x", "--kubernetes", "--agent-token-review"]).expect("ok");
        assert!(ok.agent_token_review);
        for bad in [
            &["x", "--agent-token-review"][..],
            &[
                "x",
                "--kubernetes",
                "--agent-token-review",
                "--agent-token-file",
                "/t",
            ],
            &["x", "--tls-cert", "/c.pem"],
            &["x", "--tls-key", "/k.pem"],
        ] {
            let e = Config::try_parse_from(bad).expect_err("refused");
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
        let c = Config::try_parse_from(["x", "--tls-cert", "/c", "--tls-key", "/k"]).expect("ok");
        assert_eq!(c.tls_cert.as_deref(), Some(std::path::Path::new("/c")));
    }

    #[test]
    fn bad_flag_is_a_usage_error_with_the_reason() {
        let e = Config::try_parse_from(["x", "--report-interval", "soon"]).expect_err("bad");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("not a duration"), "{e}");
        let e = Config::try_parse_from(["x", "--agent-selector", "app in ("]).expect_err("bad");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("not a label selector"), "{e}");
    }

    #[test]
    fn pinglist_policy_and_budget_flags() {
        let c = Config::try_parse_from(["x"]).expect("parses");
        assert_eq!(c.pinglist, PolicyName::Budget);
        assert_eq!(c.budget().slots(), 200);
        let e = Config::try_parse_from(["x", "--pinglist", "ring"]).expect_err("unknown");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("full-mesh, budget"), "{e}");
        let c = Config::try_parse_from(["x", "--probe-budget-pps", "100"]).expect("parses");
        let err = c.validate().expect_err("too small");
        assert!(err.contains("the minimum is 330"), "{err}");
        // Full mesh has no budget to check.
        let c = Config::try_parse_from(["x", "--pinglist", "full-mesh", "--probe-budget-pps", "1"])
            .expect("parses");
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn payload_sizes_are_one_or_two_sendable_sizes_small_first() {
        let c = Config::try_parse_from(["x"]).expect("parses");
        assert_eq!(c.payload_sizes, [56, 1372]);
        assert_eq!(c.ingest().payload_sizes, [56, 1372]);
        assert_eq!(c.down_after, 6);
        for (v, want) in [
            ("56", None),
            ("64,9000", None),
            (
                "56,1372,1472",
                Some(
                    "--payload-sizes takes one or two sizes (a small one and one near the path MTU), got 3",
                ),
            ),
            (
                "8,1372",
                Some("--payload-sizes: 8 is outside 32..=65507 bytes"),
            ),
            (
                "56,70000",
                Some("--payload-sizes: 70000 is outside 32..=65507 bytes"),
            ),
            (
                "1372,56",
                Some("--payload-sizes: the second size (56) must be larger than the first (1372)"),
            ),
        ] {
            let c = Config::try_parse_from(["x", "--payload-sizes", v]).expect("parses");
            assert_eq!(c.validate(), want.map_or(Ok(()), |w| Err(w.into())), "{v}");
        }
        let e = Config::try_parse_from(["x", "--payload-sizes", "big"]).expect_err("bad");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn discovery_flags_default_to_the_deploy_manifests() {
        let c = Config::try_parse_from(["x", "--kubernetes"]).expect("ok");
        assert!(c.kubernetes);
        let d = c.discovery();
        assert_eq!(d.agent_selector, "app.kubernetes.io/name=echomesh-agent");
        assert_eq!(d.debounce, Duration::from_millis(100));
        assert_eq!(d.host_address_type, HostAddressType::InternalIp);
        for (v, want) in [
            ("ExternalIP", HostAddressType::ExternalIp),
            ("externalip", HostAddressType::ExternalIp),
            ("InternalIP", HostAddressType::InternalIp),
        ] {
            let c = Config::try_parse_from(["x", "--host-address-type", v]).expect("ok");
            assert_eq!(c.discovery().host_address_type, want, "{v}");
        }
        let e = Config::try_parse_from(["x", "--host-address-type", "Hostname"]).expect_err("bad");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("InternalIP"), "{e}");
        for ok in [
            "app.kubernetes.io/name=echomesh-agent",
            "a=b,c!=d",
            "tier in (agent, probe),!legacy",
            "x notin (a)",
            "present",
        ] {
            assert_eq!(parse_selector(ok).as_deref(), Ok(ok));
        }
        for bad in ["a=b,", "a in (b", "a==b=c", "=x", "a in b"] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_conditions_are_off_by_default_and_need_kubernetes_and_a_sane_threshold() {
        assert_eq!(Config::local().node_condition_after, None);
        let c = Config::try_parse_from(["x", "--kubernetes", "--node-condition-after", "5m"])
            .expect("ok");
        assert_eq!(c.node_condition_after, Some(Duration::from_secs(300)));
        let e = Config::try_parse_from(["x", "--node-condition-after", "5m"]).expect_err("alone");
        assert!(e.to_string().contains("--kubernetes"), "{e}");
        for bad in ["0s", "2s", "48h", "later"] {
            let e = Config::try_parse_from(["x", "--kubernetes", "--node-condition-after", bad])
                .expect_err(bad);
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().contains("--node-condition-after"), "{e}");
        }
    }

    #[test]
    fn the_report_entry_cap_is_the_largest_assignment_unless_given() {
        assert_eq!(Config::local().report_entry_cap(), 2000 * 16);
        let c = Config::try_parse_from(["x", "--max-agents", "10"]).expect("ok");
        assert_eq!(c.report_entry_cap(), 160);
        let c = Config::try_parse_from(["x", "--max-report-entries", "500"]).expect("ok");
        assert_eq!(c.report_entry_cap(), 500);
        for bad in ["0", "4294967296", "many"] {
            let e = Config::try_parse_from(["x", "--max-report-entries", bad]).expect_err(bad);
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().contains("--max-report-entries"), "{e}");
        }
    }
}
