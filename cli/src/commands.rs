//! One function per subcommand.

use std::io::Write;
use std::time::Duration;

use echomesh_proto::v1::{
    self, EdgeSort, EdgeState, MatrixMetric, Network, graph_service_client::GraphServiceClient,
};
use serde_json::json;
use tonic::transport::Channel;

use echomesh_proto::view::{edge_detail_json, edge_json, network_name, state_name};

use crate::render::{self, age, edge_header, edge_row, ms, state_label};
use crate::{Cli, CliError, Command, EXIT_OK, EXIT_VIOLATIONS, Metric, Output, StateArg};

type Client = GraphServiceClient<Channel>;

fn net(n: Option<Network>) -> i32 {
    n.unwrap_or(Network::Unspecified) as i32
}

fn state(s: StateArg) -> i32 {
    (match s {
        StateArg::Up => EdgeState::Up,
        StateArg::Degraded => EdgeState::Degraded,
        StateArg::Down => EdgeState::Down,
        StateArg::Unknown => EdgeState::Unknown,
    }) as i32
}

fn sort(m: Metric) -> i32 {
    (match m {
        Metric::Loss => EdgeSort::Loss,
        Metric::P50 => EdgeSort::P50,
        Metric::P99 => EdgeSort::P99,
    }) as i32
}

fn json_out(out: &mut (dyn Write + Send), v: &serde_json::Value) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// Runs the subcommand; returns the exit code.
pub async fn dispatch(cli: &Cli, out: &mut (dyn Write + Send)) -> Result<i32, CliError> {
    let timeout = cli.timeout.max(Duration::from_millis(1));
    let ch = crate::connect::channel(&cli.aggregator, timeout).await?;
    let mut c = GraphServiceClient::new(ch).max_decoding_message_size(256 << 20);
    let colour = cli.output != Output::Json && render::colour();
    match &cli.command {
        Command::Status => status(&mut c, cli.output, out).await,
        Command::Nodes => nodes(&mut c, cli.output, out, colour).await,
        Command::Edges {
            from,
            to,
            network,
            state: states,
            min_loss,
            min_p99,
            sort: by,
            limit,
        } => {
            let req = v1::ListEdgesRequest {
                source_node: from.clone().unwrap_or_default(),
                target_node: to.clone().unwrap_or_default(),
                network: net(*network),
                states: states.iter().map(|s| state(*s)).collect(),
                min_loss_pct: min_loss.unwrap_or(0.0),
                min_p99_us: min_p99.unwrap_or(0.0) * 1000.0,
                sort: by.map_or(0, sort),
                limit: *limit,
                page_token: String::new(),
            };
            edges(&mut c, req, cli.output, out, colour).await
        }
        Command::Edge { src, dst } => edge(&mut c, src, dst, cli.output, out).await,
        Command::Matrix { metric, network } => {
            matrix(&mut c, *metric, *network, cli.output, out, colour).await
        }
        Command::Top { n, by } => {
            let req = v1::ListEdgesRequest {
                sort: sort(*by),
                limit: (*n).clamp(1, 10_000),
                ..Default::default()
            };
            edges(&mut c, req, cli.output, out, colour).await
        }
        Command::Watch { snapshot } => watch(&mut c, *snapshot, cli.output, out).await,
        Command::Check { max_loss, max_p99 } => {
            check(&mut c, *max_loss, *max_p99, cli.output, out).await
        }
    }
}

async fn status(c: &mut Client, o: Output, out: &mut (dyn Write + Send)) -> Result<i32, CliError> {
    let s = c.summary(v1::SummaryRequest {}).await?.into_inner();
    if o == Output::Json {
        json_out(
            out,
            &json!({
                "agents_connected": s.agents_connected, "agents_known": s.agents_known,
                "edges": s.edges, "up": s.edges_up, "degraded": s.edges_degraded,
                "down": s.edges_down, "unknown": s.edges_unknown,
                "reports_merged": s.reports_merged, "reports_duplicate": s.reports_duplicate,
                "unknown_targets": s.unknown_targets, "uptime_ms": s.uptime_ms,
            }),
        )?;
    } else {
        writeln!(
            out,
            "agents    {} connected, {} known",
            s.agents_connected, s.agents_known
        )?;
        writeln!(
            out,
            "edges     {} total: {} up, {} degraded, {} down, {} unknown",
            s.edges, s.edges_up, s.edges_degraded, s.edges_down, s.edges_unknown
        )?;
        writeln!(
            out,
            "reports   {} merged, {} duplicate; uptime {}",
            s.reports_merged,
            s.reports_duplicate,
            age(s.uptime_ms)
        )?;
    }
    Ok(EXIT_OK)
}

async fn nodes(
    c: &mut Client,
    o: Output,
    out: &mut (dyn Write + Send),
    colour: bool,
) -> Result<i32, CliError> {
    let n = c
        .list_nodes(v1::ListNodesRequest {})
        .await?
        .into_inner()
        .nodes;
    if o == Output::Json {
        let v: Vec<_> = n
            .iter()
            .map(|n| {
                json!({
                    "name": n.name, "network": network_name(n.network), "addresses": n.addresses,
                    "connected": n.connected, "last_report_age_ms": n.last_report_age_ms,
                    "edges_out": n.edges_out, "edges_down": n.edges_down,
                    "edges_degraded": n.edges_degraded, "version": n.version,
                    "generation": n.generation,
                })
            })
            .collect();
        json_out(out, &json!(v))?;
        return Ok(EXIT_OK);
    }
    let wide = o == Output::Wide;
    let mut header = vec![
        "NODE",
        "NETWORK",
        "STATE",
        "EDGES",
        "DOWN",
        "DEGRADED",
        "LAST-REPORT",
    ];
    if wide {
        header.extend(["ADDRESSES", "VERSION", "GENERATION"]);
    }
    let rows: Vec<Vec<String>> = n
        .iter()
        .map(|n| {
            let mut r = vec![
                n.name.clone(),
                network_name(n.network).into(),
                if n.connected { "UP" } else { "UNKNOWN" }.into(),
                n.edges_out.to_string(),
                n.edges_down.to_string(),
                n.edges_degraded.to_string(),
                age(n.last_report_age_ms),
            ];
            if wide {
                r.extend([
                    n.addresses.join(","),
                    n.version.clone(),
                    n.generation.to_string(),
                ]);
            }
            r
        })
        .collect();
    render::table(out, &header, &rows, Some(2), colour)?;
    Ok(EXIT_OK)
}

async fn edges(
    c: &mut Client,
    req: v1::ListEdgesRequest,
    o: Output,
    out: &mut (dyn Write + Send),
    colour: bool,
) -> Result<i32, CliError> {
    let r = c.list_edges(req).await?.into_inner();
    if o == Output::Json {
        let v: Vec<_> = r.edges.iter().map(edge_json).collect();
        json_out(out, &json!({"edges": v, "total_matched": r.total_matched}))?;
        return Ok(EXIT_OK);
    }
    let wide = o == Output::Wide;
    let rows: Vec<_> = r.edges.iter().map(|e| edge_row(e, wide)).collect();
    render::table(out, &edge_header(wide), &rows, Some(2), colour)?;
    if (r.edges.len() as u64) < r.total_matched {
        writeln!(
            out,
            "({} of {} edges shown)",
            r.edges.len(),
            r.total_matched
        )?;
    }
    Ok(EXIT_OK)
}

async fn edge(
    c: &mut Client,
    src: &str,
    dst: &str,
    o: Output,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let e = c
        .get_edge(v1::GetEdgeRequest {
            source_node: src.into(),
            target: dst.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    if o == Output::Json {
        json_out(out, &edge_detail_json(&e))?;
        return Ok(EXIT_OK);
    }
    let lines = [
        (
            "source",
            format!("{}/{}", e.source_node, network_name(e.source_network)),
        ),
        (
            "target",
            format!(
                "{}/{} {}",
                e.target_node,
                network_name(e.target_network),
                e.target_address
            ),
        ),
        (
            "state",
            format!("{} for {}", state_label(e.state), age(e.state_age_ms)),
        ),
        ("last seen", format!("{} ago", age(e.last_seen_age_ms))),
        (
            "loss",
            format!("{:.2}% (1m)  {:.2}% (10m)", e.loss_1m_pct, e.loss_10m_pct),
        ),
        (
            "rtt ms",
            format!(
                "p50 {}  p90 {}  p99 {}  worst p99 10m {}",
                ms(e.p50_us),
                ms(e.p90_us),
                ms(e.p99_us),
                ms(e.p99_10m_us)
            ),
        ),
        (
            "totals",
            format!(
                "sent {}  received {}  dup {}  reordered {}  late {}  icmp errors {}",
                e.sent_total,
                e.received_total,
                e.duplicates_total,
                e.reordered_total,
                e.late_total,
                e.icmp_errors_total
            ),
        ),
    ];
    for (k, v) in lines {
        writeln!(out, "{k:<10} {v}")?;
    }
    if e.expected_down {
        writeln!(
            out,
            "{:<10} the target node is cordoned, draining or being deleted",
            "planned"
        )?;
    }
    if !e.target_node_ready.is_empty() {
        // From the Kubernetes API: printed escaped, never as raw terminal input.
        writeln!(
            out,
            "{:<10} {}",
            "node ready",
            render::printable(&e.target_node_ready)
        )?;
    }
    Ok(EXIT_OK)
}

async fn matrix(
    c: &mut Client,
    metric: Metric,
    network: Option<Network>,
    o: Output,
    out: &mut (dyn Write + Send),
    colour: bool,
) -> Result<i32, CliError> {
    let m = c
        .matrix(v1::MatrixRequest {
            metric: (match metric {
                Metric::Loss => MatrixMetric::Loss,
                Metric::P50 => MatrixMetric::P50,
                Metric::P99 => MatrixMetric::P99,
            }) as i32,
            network: net(network),
        })
        .await?
        .into_inner();
    let n = m.nodes.len();
    if m.values.len() != n * n || m.states.len() != n * n {
        return Err(CliError::Rpc(tonic::Status::internal(
            "matrix size does not match its node list",
        )));
    }
    if o == Output::Json {
        let rows: Vec<Vec<serde_json::Value>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        let v = m.values[i * n + j];
                        if v.is_nan() {
                            serde_json::Value::Null
                        } else {
                            json!(v)
                        }
                    })
                    .collect()
            })
            .collect();
        json_out(
            out,
            &json!({"metric": format!("{metric:?}").to_lowercase(), "nodes": m.nodes, "values": rows}),
        )?;
        return Ok(EXIT_OK);
    }
    // Rows are sources, columns targets, labelled by index to keep the grid narrow.
    let unit = if metric == Metric::Loss {
        "loss %"
    } else {
        "ms"
    };
    writeln!(
        out,
        "{} ({unit}), rows = source, columns = target",
        format!("{metric:?}").to_lowercase()
    )?;
    for (i, name) in m.nodes.iter().enumerate() {
        writeln!(out, "  [{i}] {name}")?;
    }
    let cell = 7;
    write!(out, "{:>5}", "")?;
    for j in 0..n {
        write!(out, " {:>cell$}", format!("[{j}]"))?;
    }
    writeln!(out)?;
    for i in 0..n {
        write!(out, "{:>5}", format!("[{i}]"))?;
        for j in 0..n {
            let v = m.values[i * n + j];
            let text = if i == j {
                "·".to_string()
            } else if v.is_nan() {
                "-".to_string()
            } else if metric == Metric::Loss {
                format!("{v:.1}")
            } else {
                format!("{:.2}", v / 1000.0)
            };
            let padded = format!(" {text:>cell$}");
            if colour && i != j {
                let st = m.states[i * n + j];
                write!(out, "{}", paint_cell(&padded, st))?;
            } else {
                write!(out, "{padded}")?;
            }
        }
        writeln!(out)?;
    }
    Ok(EXIT_OK)
}

fn paint_cell(s: &str, state: i32) -> String {
    let code = match EdgeState::try_from(state) {
        Ok(EdgeState::Up) => "32",
        Ok(EdgeState::Degraded) => "33",
        Ok(EdgeState::Down) => "31",
        _ => "90",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

async fn watch(
    c: &mut Client,
    snapshot: bool,
    o: Output,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let mut s = c
        .watch_events(v1::WatchEventsRequest { snapshot })
        .await?
        .into_inner();
    while let Some(ev) = s.message().await? {
        let kind = v1::event::Kind::try_from(ev.kind)
            .map(|k| k.as_str_name().trim_start_matches("KIND_").to_lowercase())
            .unwrap_or_else(|_| "unknown".into());
        if o == Output::Json {
            serde_json::to_writer(
                &mut *out,
                &json!({
                    "kind": kind, "at_unix_ms": ev.at_unix_ms, "source_node": ev.source_node,
                    "source_network": network_name(ev.source_network), "target_node": ev.target_node,
                    "target_address": ev.target_address, "from": state_name(ev.from),
                    "to": state_name(ev.to), "message": ev.message, "missed": ev.missed,
                }),
            )
            .map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else if kind == "edge_state" {
            writeln!(
                out,
                "{}  {}/{} -> {} ({})  {} -> {}",
                ev.at_unix_ms,
                ev.source_node,
                network_name(ev.source_network),
                ev.target_node,
                ev.target_address,
                state_label(ev.from),
                state_label(ev.to)
            )?;
        } else {
            writeln!(
                out,
                "{}  {kind}  {}/{}  {}",
                ev.at_unix_ms,
                ev.source_node,
                network_name(ev.source_network),
                ev.message
            )?;
        }
        out.flush()?;
    }
    Ok(EXIT_OK)
}

/// Every known edge within the limits → 0, otherwise 1 with the offenders listed. Edges whose
/// target node is expected down (cordoned, draining or deleting: Kubernetes discovery) are not checked.
async fn check(
    c: &mut Client,
    max_loss: f64,
    max_p99_ms: Option<f64>,
    o: Output,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let mut bad = Vec::new();
    let mut checked = 0u64;
    let mut unknown = 0u64;
    let mut expected_down = 0u64;
    let mut token = String::new();
    loop {
        let page = c
            .list_edges(v1::ListEdgesRequest {
                limit: 10_000,
                page_token: token.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        for e in page.edges {
            if e.state == EdgeState::Unknown as i32 {
                unknown += 1;
                continue;
            }
            // The target's node is cordoned, draining or deleting (Kubernetes discovery): planned.
            if e.expected_down {
                expected_down += 1;
                continue;
            }
            checked += 1;
            let loss_bad = e.loss_1m_pct > max_loss || e.state == EdgeState::Down as i32;
            let p99_bad = max_p99_ms.is_some_and(|m| e.p99_us / 1000.0 > m);
            if loss_bad || p99_bad {
                bad.push(e);
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    if o == Output::Json {
        let v: Vec<_> = bad.iter().map(edge_json).collect();
        json_out(
            out,
            &json!({"ok": bad.is_empty(), "checked": checked, "unknown": unknown,
                "expected_down": expected_down, "violations": v}),
        )?;
    } else if bad.is_empty() {
        writeln!(
            out,
            "OK: {checked} edges within limits ({unknown} unknown not checked)"
        )?;
    } else {
        writeln!(out, "FAIL: {} of {checked} edges outside limits", bad.len())?;
        let rows: Vec<_> = bad.iter().map(|e| edge_row(e, false)).collect();
        render::table(out, &edge_header(false), &rows, Some(2), false)?;
    }
    Ok(if bad.is_empty() {
        EXIT_OK
    } else {
        EXIT_VIOLATIONS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sort_metric_asks_the_server_for_its_own_order() {
        assert_eq!(sort(Metric::Loss), EdgeSort::Loss as i32);
        assert_eq!(sort(Metric::P50), EdgeSort::P50 as i32);
        assert_eq!(sort(Metric::P99), EdgeSort::P99 as i32);
    }
}
