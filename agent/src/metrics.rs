//! The agent's `/metrics`: what its probe engine did, for Prometheus.
//!
//! Why no per-target series: every agent probes every node, so per-target labels would make the
//! cluster's series count grow with nodes² — the aggregator already exports per-node and worst-edge
//! figures from the reports. Here every series is per agent only, a fixed set (35) whatever
//! the number of targets; Prometheus adds the pod and node labels from its scrape config.
//!
//! Two feeds, both cheap: [`AgentMetrics::record_windows`] adds each report window's per-target
//! counters into lifetime totals (the run loop already takes these windows for its reports), and
//! [`AgentMetrics::set_engine`] stores the engine's own counters ([`EngineCounters`], from
//! `EngineHandle::counters()`) on the report tick; `report::run` does both and serves
//! [`router`] (`GET /metrics`, `GET /healthz`) on `--http-listen` (default `0.0.0.0:7072`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Mutex;

use crate::icmp::Reject;
use crate::prober::TargetWindow;
use crate::prober::stats::{EngineCounters, IcmpErrorCounts};

/// Lifetime totals of the per-target window counters, summed over targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeTotals {
    /// Probes sent.
    pub sent: u64,
    /// Probes answered in time.
    pub received: u64,
    /// Probes without a reply before the timeout.
    pub lost: u64,
    /// Extra replies to an answered probe.
    pub duplicates: u64,
    /// Replies overtaken by a later probe's reply.
    pub reordered: u64,
    /// Replies after the timeout.
    pub late: u64,
    /// ICMP errors quoting our probes, by kind.
    pub icmp_errors: IcmpErrorCounts,
}

/// The run loop's replay buffer: reports waiting for an ack, and those dropped because it was full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStatus {
    /// Reports waiting for an ack.
    pub buffered: usize,
    /// Reports dropped (oldest first) because the buffer was full.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct State {
    totals: ProbeTotals,
    engine: EngineCounters,
    targets: usize,
    replay: ReplayStatus,
    assignments_rejected: u64,
    engine_stopped: bool,
}

/// The agent's metrics (cheap to clone; share one between the run loop and the HTTP server).
#[derive(Debug, Clone, Default)]
pub struct AgentMetrics {
    state: Arc<Mutex<State>>,
}

impl AgentMetrics {
    /// Empty metrics.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A panic elsewhere while holding the lock leaves plain counters behind: keep serving them.
        let mut g = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// Adds one report window (every target's counters since the previous window).
    pub fn record_windows(&self, windows: &[TargetWindow]) {
        self.with(|s| {
            let t = &mut s.totals;
            for w in windows {
                let st = &w.stats;
                t.sent = t.sent.saturating_add(st.sent);
                t.received = t.received.saturating_add(st.received);
                t.lost = t.lost.saturating_add(st.lost);
                t.duplicates = t.duplicates.saturating_add(st.duplicates);
                t.reordered = t.reordered.saturating_add(st.reordered);
                t.late = t.late.saturating_add(st.late);
                t.icmp_errors.merge(&st.errors);
            }
        });
    }

    /// Stores the engine's counters (they are lifetime figures: the latest replaces the last).
    pub fn set_engine(&self, counters: EngineCounters) {
        self.with(|s| s.engine = counters);
    }

    /// Stores the size of the current pinglist.
    pub fn set_targets(&self, n: usize) {
        self.with(|s| s.targets = n);
    }

    /// Stores the replay buffer's state (read by embedders and tests; not part of the scrape, so
    /// the series set stays fixed).
    pub fn set_replay(&self, status: ReplayStatus) {
        self.with(|s| s.replay = status);
    }

    /// Marks the probe engine as stopped on its own: `/healthz` fails from then on.
    pub fn set_engine_stopped(&self) {
        self.with(|s| s.engine_stopped = true);
    }

    /// True once the probe engine stopped on its own.
    #[must_use]
    pub fn engine_stopped(&self) -> bool {
        self.with(|s| s.engine_stopped)
    }

    /// Counts an assignment the agent refused (it keeps its last good one).
    pub fn assignment_rejected(&self) {
        self.with(|s| s.assignments_rejected += 1);
    }

    /// Assignments refused so far.
    #[must_use]
    pub fn assignments_rejected(&self) -> u64 {
        self.with(|s| s.assignments_rejected)
    }

    /// The replay buffer's state as of the latest report tick, ack or reconnect.
    #[must_use]
    pub fn replay(&self) -> ReplayStatus {
        self.with(|s| s.replay)
    }

    /// The totals so far.
    #[must_use]
    pub fn totals(&self) -> ProbeTotals {
        self.with(|s| s.totals.clone())
    }

    /// One scrape in the Prometheus text format 0.0.4, or OpenMetrics when `openmetrics`.
    #[must_use]
    pub fn render(&self, openmetrics: bool) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        let r = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        };
        if let Err(e) = r {
            out = format!("# encoding failed: {e}\n");
        }
        out
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn labelled_counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    rows: &[(&str, u64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in rows {
        let labels = [(label, *value)];
        ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for AgentMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let (t, e, targets, rejected_assignments, replay) = self.with(|s| {
            (
                s.totals.clone(),
                s.engine.clone(),
                s.targets,
                s.assignments_rejected,
                s.replay,
            )
        });
        counter(
            &mut enc,
            "echomesh_agent_assignments_rejected",
            "Assignments refused as a whole (outside --allow-cidr, --max-targets, --max-pps, or settings the engine cannot run); the last good one kept running.",
            rejected_assignments,
        )?;
        counter(
            &mut enc,
            "echomesh_agent_reports_dropped",
            "Reports dropped unsent because the replay buffer was full (oldest first).",
            replay.dropped,
        )?;
        labelled_counters(
            &mut enc,
            "echomesh_agent_probes",
            "Echo probes by outcome: sent; received (answered in time); lost (no reply before the timeout).",
            "result",
            &[("sent", t.sent), ("received", t.received), ("lost", t.lost)],
        )?;
        labelled_counters(
            &mut enc,
            "echomesh_agent_replies_unusual",
            "Replies that were not a plain first answer: duplicate, reordered (overtaken), late (after the timeout, already counted lost).",
            "kind",
            &[
                ("duplicate", t.duplicates),
                ("reordered", t.reordered),
                ("late", t.late),
            ],
        )?;
        let i = &t.icmp_errors;
        labelled_counters(
            &mut enc,
            "echomesh_agent_icmp_errors",
            "ICMP errors quoting one of our probes, by kind.",
            "kind",
            &[
                ("net_unreachable", i.net_unreachable),
                ("host_unreachable", i.host_unreachable),
                ("protocol_unreachable", i.protocol_unreachable),
                ("port_unreachable", i.port_unreachable),
                ("frag_needed", i.frag_needed),
                ("admin_prohibited", i.admin_prohibited),
                ("time_exceeded", i.time_exceeded),
                ("parameter_problem", i.parameter_problem),
                ("other", i.other),
            ],
        )?;
        let rejected: Vec<(&str, u64)> = Reject::ALL
            .iter()
            .map(|r| (r.as_str(), e.rejected.get(r.index()).copied().unwrap_or(0)))
            .collect();
        labelled_counters(
            &mut enc,
            "echomesh_agent_packets_rejected",
            "Received packets the parser dropped, by reason (spoofed, corrupted, foreign, ...).",
            "reason",
            &rejected,
        )?;
        counter(
            &mut enc,
            "echomesh_agent_untracked_replies",
            "Verified replies to probes no longer tracked (far too late, or from a previous pinglist).",
            e.untracked_replies,
        )?;
        counter(
            &mut enc,
            "echomesh_agent_send_errors",
            "Probes the local kernel refused to send (no route, buffer full, ...).",
            e.send_errors,
        )?;
        counter(
            &mut enc,
            "echomesh_agent_recv_errors",
            "Receive calls that failed other than with nothing to read.",
            e.recv_errors,
        )?;
        counter(
            &mut enc,
            "echomesh_agent_socket_drops",
            "Datagrams the kernel dropped because the raw socket's receive queue was full (SO_RXQ_OVFL).",
            e.socket_drops,
        )?;
        counter(
            &mut enc,
            "echomesh_agent_clock_steps",
            "Replies whose wall-clock RTT disagreed with the monotonic clock (the wall clock was stepped): counted received, their RTT dropped.",
            e.clock_steps,
        )?;
        counter(
            &mut enc,
            "echomesh_agent_inflight_overruns",
            "Probes expired early because the in-flight table wrapped onto them.",
            e.inflight_overruns,
        )?;
        let lag = ConstGauge::new(duration_s(e.max_schedule_lag));
        lag.encode(enc.encode_descriptor(
            "echomesh_agent_schedule_lag_max",
            "Largest delay so far between a probe's scheduled and actual send time.",
            Some(&Unit::Seconds),
            lag.metric_type(),
        )?)?;
        let g = ConstGauge::new(targets as i64);
        g.encode(enc.encode_descriptor(
            "echomesh_agent_targets",
            "Targets in the current pinglist.",
            None,
            g.metric_type(),
        )?)?;
        let mut m = enc.encode_descriptor(
            "echomesh_agent_build",
            "Build information.",
            None,
            MetricType::Info,
        )?;
        m.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        Ok(())
    }
}

fn duration_s(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Serves [`router`] on `listener` until the task is dropped or aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: AgentMetrics,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics and /healthz");
    }
    axum::serve(listener, router(metrics)).await
}

/// `GET /metrics` (OpenMetrics when the scraper accepts it) and `GET /healthz` for the agent's
/// HTTP port.
pub fn router(metrics: AgentMetrics) -> Router {
    let health = metrics.clone();
    Router::new()
        .route(
            "/healthz",
            get(move || {
                let stopped = health.engine_stopped();
                async move {
                    if stopped {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the probe engine stopped\n",
                        )
                    } else {
                        (StatusCode::OK, "ok\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let metrics = metrics.clone();
                async move {
                    let om = headers
                        .get(header::ACCEPT)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|a| a.contains("application/openmetrics-text"));
                    let ctype = if om {
                        "application/openmetrics-text; version=1.0.0; charset=utf-8"
                    } else {
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE
                    };
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, ctype)],
                        metrics.render(om),
                    )
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::prober::stats::TargetStats;

    fn window(id: u64, sent: u64, received: u64) -> TargetWindow {
        let mut stats = TargetStats {
            sent,
            received,
            lost: sent - received,
            duplicates: 1,
            ..TargetStats::default()
        };
        stats.errors.host_unreachable = 2;
        TargetWindow {
            id,
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8)),
            stats,
        }
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn windows_and_engine_counters_become_totals() {
        let m = AgentMetrics::new();
        m.record_windows(&[window(1, 10, 9), window(2, 10, 10)]);
        m.record_windows(&[window(1, 10, 10)]);
        let mut e = EngineCounters {
            send_errors: 4,
            socket_drops: 7,
            max_schedule_lag: Duration::from_millis(3),
            ..EngineCounters::default()
        };
        e.reject(Reject::BadChecksum);
        e.reject(Reject::BadChecksum);
        e.reject(Reject::BadMac);
        m.set_engine(e);
        m.set_targets(2);
        let text = m.render(false);
        for (series, want) in [
            (r#"echomesh_agent_probes_total{result="sent"}"#, 30.0),
            (r#"echomesh_agent_probes_total{result="received"}"#, 29.0),
            (r#"echomesh_agent_probes_total{result="lost"}"#, 1.0),
            (
                r#"echomesh_agent_replies_unusual_total{kind="duplicate"}"#,
                3.0,
            ),
            (
                r#"echomesh_agent_icmp_errors_total{kind="host_unreachable"}"#,
                6.0,
            ),
            (
                r#"echomesh_agent_packets_rejected_total{reason="bad_checksum"}"#,
                2.0,
            ),
            (
                r#"echomesh_agent_packets_rejected_total{reason="bad_mac"}"#,
                1.0,
            ),
            ("echomesh_agent_send_errors_total", 4.0),
            ("echomesh_agent_socket_drops_total", 7.0),
            ("echomesh_agent_schedule_lag_max_seconds", 0.003),
            ("echomesh_agent_targets", 2.0),
        ] {
            assert_eq!(value(&text, series), Some(want), "{series}");
        }
        let om = m.render(true);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(om.contains("echomesh_agent_build_info{version="));
    }

    #[test]
    fn series_do_not_depend_on_the_number_of_targets() {
        let count = |targets: u64| {
            let m = AgentMetrics::new();
            let w: Vec<TargetWindow> = (0..targets).map(|i| window(i, 10, 10)).collect();
            m.record_windows(&w);
            m.set_targets(w.len());
            m.render(false)
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .count()
        };
        assert_eq!(count(1), count(5000));
        assert_eq!(count(1), 35);
    }

    #[test]
    fn promtool_accepts_the_scrape() {
        let m = AgentMetrics::new();
        m.record_windows(&[window(1, 10, 9)]);
        let text = m.render(false);
        let mut child = match std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("skipping: promtool is not installed (apt-get install prometheus)");
                return;
            }
            Err(e) => panic!("running promtool: {e}"),
        };
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write as _;
            stdin.write_all(text.as_bytes()).expect("write scrape");
        }
        let out = child.wait_with_output().expect("promtool output");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && report.trim().is_empty(),
            "{report}\n{text}"
        );
    }
}
