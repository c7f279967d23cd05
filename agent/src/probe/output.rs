//! What `probe` prints: the aligned table, the JSON rows with exactly the documented keys, the
//! one-line summary the benchmark parses, and the fping-compatible exit status. Pure functions of
//! an [`Outcome`], so every format is tested without sockets.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use crate::prober::Outcome;
use crate::prober::stats::TargetStats;

/// One row of `-o json`, with exactly the documented keys.
#[derive(Debug, Serialize, PartialEq)]
pub struct JsonRow {
    /// Target address.
    pub target: String,
    /// Probes sent.
    pub sent: u64,
    /// Replies received in time.
    pub received: u64,
    /// `100 · (sent − received) / sent`.
    pub loss_pct: f64,
    /// Duplicate replies.
    pub duplicates: u64,
    /// ICMP errors quoting our probes.
    pub errors: u64,
    /// RTT summary in microseconds; null when nothing was received.
    pub rtt_us: Option<RttUs>,
}

/// RTT summary in microseconds.
#[derive(Debug, Serialize, PartialEq)]
pub struct RttUs {
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

fn loss_pct(s: &TargetStats) -> f64 {
    if s.sent == 0 {
        0.0
    } else {
        (s.sent - s.received.min(s.sent)) as f64 * 100.0 / s.sent as f64
    }
}

fn rtt_us(s: &TargetStats) -> Option<RttUs> {
    let h = &s.rtt;
    let us = |d: Option<Duration>| d.map_or(0.0, |d| d.as_nanos() as f64 / 1000.0);
    let q = |p: f64| h.quantile_ns(p).unwrap_or(0.0) / 1000.0;
    (!h.is_empty()).then(|| RttUs {
        min: us(h.min()),
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        max: us(h.max()),
        mean: h.sum_ns() as f64 / h.count() as f64 / 1000.0,
    })
}

/// The JSON rows of an outcome.
#[must_use]
pub fn json_rows(outcome: &Outcome) -> Vec<JsonRow> {
    outcome
        .targets
        .iter()
        .map(|t| JsonRow {
            target: t.addr.to_string(),
            sent: t.stats.sent,
            received: t.stats.received,
            loss_pct: loss_pct(&t.stats),
            duplicates: t.stats.duplicates,
            errors: t.stats.errors.total(),
            rtt_us: rtt_us(&t.stats),
        })
        .collect()
}

/// Writes the table form. `ERR` counts ICMP errors and probes the local kernel refused to send;
/// every target with refused probes gets a line under the table that says why.
pub fn write_table(out: &mut impl Write, outcome: &Outcome) -> std::io::Result<()> {
    let width = outcome
        .targets
        .iter()
        .map(|t| t.addr.to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    writeln!(
        out,
        "{:<width$} {:>7} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>5}",
        "TARGET",
        "SENT",
        "RECV",
        "LOSS%",
        "MIN_MS",
        "P50_MS",
        "P90_MS",
        "P99_MS",
        "MAX_MS",
        "MEAN_MS",
        "DUP",
        "ERR"
    )?;
    for (row, t) in json_rows(outcome).into_iter().zip(&outcome.targets) {
        let ms = |f: fn(&RttUs) -> f64| {
            row.rtt_us
                .as_ref()
                .map_or("-".to_string(), |r| format!("{:.3}", f(r) / 1000.0))
        };
        writeln!(
            out,
            "{:<width$} {:>7} {:>7} {:>6.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>5}",
            row.target,
            row.sent,
            row.received,
            row.loss_pct,
            ms(|r| r.min),
            ms(|r| r.p50),
            ms(|r| r.p90),
            ms(|r| r.p99),
            ms(|r| r.max),
            ms(|r| r.mean),
            row.duplicates,
            row.errors + t.stats.send_errors
        )?;
    }
    for t in &outcome.targets {
        if let Some(why) = t.stats.last_send_error {
            writeln!(
                out,
                "{}: {} of {} probes not sent: {why}",
                t.addr, t.stats.send_errors, t.stats.sent
            )?;
        }
    }
    Ok(())
}

/// One `key=value` line summarising the run, for people and for the benchmark script.
#[must_use]
pub fn summary_line(outcome: &Outcome, elapsed: Duration) -> String {
    let mut total = TargetStats::default();
    for t in &outcome.targets {
        total.sent += t.stats.sent;
        total.received += t.stats.received;
        total.lost += t.stats.lost;
        total.duplicates += t.stats.duplicates;
        total.late += t.stats.late;
        total.reordered += t.stats.reordered;
        total.send_errors += t.stats.send_errors;
        total.errors.merge(&t.stats.errors);
        total.rtt.merge(&t.stats.rtt);
    }
    let c = &outcome.counters;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let q = |p: f64| {
        total
            .rtt
            .quantile_ns(p)
            .map_or("-".into(), |ns| format!("{:.1}", ns / 1000.0))
    };
    format!(
        "summary: targets={} sent={} received={} lost={} loss_pct={:.3} duplicates={} reordered={} late={} \
         icmp_errors={} send_errors={} rejected={} socket_drops={} elapsed_s={:.3} rate_pps={:.0} \
         rtt_p50_us={} rtt_p99_us={} kernel_tx_stamps={} user_send_stamps={} batch_unstamped={} send_calls={} max_schedule_lag_ms={:.3}{}",
        outcome.targets.len(),
        total.sent,
        total.received,
        total.lost,
        loss_pct(&total),
        total.duplicates,
        total.reordered,
        total.late,
        total.errors.total(),
        total.send_errors,
        c.rejected_total(),
        c.socket_drops,
        secs,
        total.sent as f64 / secs,
        q(0.5),
        q(0.99),
        c.kernel_tx_stamps,
        c.user_send_stamps,
        c.batch_unstamped,
        c.send_calls,
        c.max_schedule_lag.as_secs_f64() * 1000.0,
        if outcome.interrupted {
            " interrupted=true"
        } else {
            ""
        },
    )
}

/// Exit status for an outcome: 0 when every probe was answered, 1 otherwise.
#[must_use]
pub fn exit_status(outcome: &Outcome) -> u8 {
    let all = outcome
        .targets
        .iter()
        .all(|t| t.stats.sent > 0 && t.stats.received >= t.stats.sent);
    if all && !outcome.interrupted { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prober::TargetWindow;
    use crate::prober::stats::EngineCounters;
    use std::net::IpAddr;

    fn outcome(rows: Vec<(u64, u64, &[u64])>) -> Outcome {
        Outcome {
            targets: rows
                .into_iter()
                .enumerate()
                .map(|(i, (sent, received, rtts))| {
                    let mut stats = TargetStats {
                        sent,
                        received,
                        lost: sent - received,
                        ..TargetStats::default()
                    };
                    for &r in rtts {
                        stats.rtt.record_ns(r);
                    }
                    TargetWindow {
                        id: i as u64,
                        addr: IpAddr::from([127, 0, 0, 1 + i as u8]),
                        stats,
                    }
                })
                .collect(),
            counters: EngineCounters::default(),
            interrupted: false,
        }
    }

    #[test]
    fn json_has_exactly_the_documented_keys() {
        let o = outcome(vec![(2, 2, &[10_000, 20_000]), (2, 0, &[])]);
        let text = serde_json::to_string(&json_rows(&o)).expect("json");
        let want = r#"[{"target":"127.0.0.1","sent":2,"received":2,"loss_pct":0.0,"duplicates":0,"errors":0,"rtt_us":{"min":10.0,"p50":"#;
        assert!(text.starts_with(want), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("parse");
        let first = v[0].as_object().expect("object");
        let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let want = [
            "duplicates",
            "errors",
            "loss_pct",
            "received",
            "rtt_us",
            "sent",
            "target",
        ];
        assert_eq!(keys, want);
        let rtt = first["rtt_us"].as_object().expect("rtt");
        let mut rtt: Vec<&str> = rtt.keys().map(String::as_str).collect();
        rtt.sort_unstable();
        assert_eq!(rtt, ["max", "mean", "min", "p50", "p90", "p99"]);
        assert_eq!(first["rtt_us"]["min"], 10.0);
        assert_eq!(first["rtt_us"]["max"], 20.0);
        assert_eq!(first["rtt_us"]["mean"], 15.0);
        assert!(v[1]["rtt_us"].is_null());
        assert_eq!(v[1]["loss_pct"], 100.0);
    }

    #[test]
    fn exit_status_follows_fping() {
        assert_eq!(exit_status(&outcome(vec![(3, 3, &[1_000])])), 0);
        assert_eq!(
            exit_status(&outcome(vec![(3, 3, &[1_000]), (3, 2, &[1_000])])),
            1
        );
        let mut o = outcome(vec![(3, 3, &[1_000])]);
        o.interrupted = true;
        assert_eq!(exit_status(&o), 1);
    }

    #[test]
    fn table_has_a_row_per_target() {
        let mut buf = Vec::new();
        write_table(&mut buf, &outcome(vec![(2, 2, &[1_500_000]), (1, 0, &[])])).expect("write");
        let text = String::from_utf8(buf).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("1.500"), "{text}");
        assert!(lines[2].contains("100.0"), "{text}");
    }

    #[test]
    fn refused_probes_count_as_errors_and_say_why() {
        let mut o = outcome(vec![
            (5, 0, &[]),
            (5, 5, &[10_000, 20_000, 30_000, 40_000, 50_000]),
        ]);
        o.targets[0].stats.send_errors = 5;
        o.targets[0].stats.last_send_error =
            Some(crate::prober::stats::SendError::Os(libc::EMSGSIZE));
        let mut out = Vec::new();
        write_table(&mut out, &o).expect("table");
        let text = String::from_utf8(out).expect("utf8");
        let first = text.lines().nth(1).expect("row");
        assert!(
            first.trim_end().ends_with(" 5"),
            "ERR counts refused probes: {first}"
        );
        assert!(
            text.contains(
                "127.0.0.1: 5 of 5 probes not sent: Message too long (os error 90): the probe is \
                 larger than the path's MTU allows (don't-fragment is set)"
            ),
            "{text}"
        );
        assert_eq!(text.lines().count(), 4, "{text}");
        // p99 of five probes is their largest, as the MAX column says.
        let second = text.lines().nth(2).expect("row");
        let cols: Vec<&str> = second.split_whitespace().collect();
        assert_eq!(cols[7], cols[8], "P99 == MAX: {second}");
    }
}
