//! One function per subcommand.

use std::io::Write;
use std::time::Duration;

use echomesh_proto::v1::{
    self, EdgeSort, EdgeState, MatrixMetric, Network, graph_service_client::GraphServiceClient,
};
use serde_json::json;
use tonic::transport::Channel;

use echomesh_proto::view::{
    edge_detail_json, edge_json, event_json, event_kind_name, network_name, rfc3339_ms,
};
use echomesh_runtime::Backoff;

use crate::render::{self, EDGE_STATE_COL, age, edge_header, edge_row, ms, state_label};
use crate::{
    Cli, CliError, Command, EXIT_OK, EXIT_VIOLATIONS, Metric, NodeOrder, Output, StateArg,
};

type Client = GraphServiceClient<Channel>;

/// The connection of one command and what its failures need to say.
struct Ctx<'a> {
    c: Client,
    url: &'a str,
    timeout: Duration,
}

/// How many known agents a "not found" message names.
const KNOWN_SHOWN: usize = 20;

impl Ctx<'_> {
    /// A failed call as the operator should read it.
    fn err(&self, s: tonic::Status) -> CliError {
        crate::connect::status(self.url, s, self.timeout)
    }

    /// Like [`Ctx::err`]; a name that matched nothing also lists the agents the aggregator knows.
    async fn named(&mut self, s: tonic::Status) -> CliError {
        match self.err(s) {
            CliError::NotFound(msg) => {
                let known = match self.c.list_nodes(v1::ListNodesRequest {}).await {
                    Ok(r) => known_agents(&r.into_inner().nodes),
                    Err(_) => String::new(),
                };
                CliError::NotFound(format!("{msg}{known}"))
            }
            e => e,
        }
    }
}

/// `; known agents: a/pod, b/pod` (at most [`KNOWN_SHOWN`], escaped), or that none is known.
fn known_agents(nodes: &[v1::Node]) -> String {
    if nodes.is_empty() {
        return "; the aggregator knows no agents".into();
    }
    let shown: Vec<String> = nodes
        .iter()
        .take(KNOWN_SHOWN)
        .map(|n| render::printable(&format!("{}/{}", n.name, network_name(n.network))))
        .collect();
    let more = nodes.len().saturating_sub(KNOWN_SHOWN);
    let tail = if more > 0 {
        format!(" and {more} more (echomesh nodes)")
    } else {
        String::new()
    };
    format!("; known agents: {}{tail}", shown.join(", "))
}

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

/// Runs the subcommand; returns the exit code. `--timeout` bounds the whole command (connecting,
/// every call, paging); `watch` runs until stopped, reconnecting, and uses it per connection.
pub async fn dispatch(
    cli: &Cli,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let timeout = cli.timeout.max(Duration::from_millis(1));
    if let Command::Watch {
        snapshot,
        every_change,
    } = cli.command
    {
        let req = v1::WatchEventsRequest {
            snapshot,
            every_change,
        };
        return watch(cli, timeout, req, out, err).await;
    }
    match tokio::time::timeout(timeout, once(cli, timeout, out)).await {
        Ok(r) => r,
        Err(_) => Err(CliError::Timeout {
            url: cli.aggregator.clone(),
            after: timeout,
        }),
    }
}

fn client(ch: Channel) -> Client {
    GraphServiceClient::new(ch).max_decoding_message_size(256 << 20)
}

async fn once(cli: &Cli, timeout: Duration, out: &mut (dyn Write + Send)) -> Result<i32, CliError> {
    let ch = crate::connect::channel_with(&cli.aggregator, cli.tls_ca.as_deref(), timeout).await?;
    let mut cx = Ctx {
        c: client(ch),
        url: &cli.aggregator,
        timeout,
    };
    let colour = cli.output != Output::Json && render::colour();
    match &cli.command {
        Command::Status => status(&mut cx, cli.output, out).await,
        Command::Nodes { summary: false, .. } => nodes(&mut cx, cli.output, out, colour).await,
        Command::Nodes {
            summary: true,
            zone,
            network,
            sort,
            limit,
        } => {
            let req = v1::NodeSummaryRequest {
                network: net(*network),
                zone: crate::summary::zone_arg(zone.as_deref()),
                limit: *limit,
                page_token: String::new(),
                sort: (match sort {
                    NodeOrder::Badness => v1::NodeSort::Badness,
                    NodeOrder::Name => v1::NodeSort::Name,
                }) as i32,
            };
            let r =
                cx.c.node_summary(req)
                    .await
                    .map_err(|e| cx.err(e))?
                    .into_inner();
            crate::summary::print_nodes(&r, cli.output, out)?;
            Ok(EXIT_OK)
        }
        Command::Zones { network } => {
            let r =
                cx.c.zone_matrix(v1::ZoneMatrixRequest {
                    network: net(*network),
                })
                .await
                .map_err(|e| cx.err(e))?
                .into_inner();
            crate::summary::print_zones(&r, cli.output, out, colour)?;
            Ok(EXIT_OK)
        }
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
            edges(&mut cx, req, cli.output, out, colour).await
        }
        Command::Edge { src, dst } => edge(&mut cx, src, dst, cli.output, out).await,
        Command::Matrix {
            metric,
            network,
            zone,
        } => {
            let zone = crate::summary::zone_arg(zone.as_deref());
            matrix(&mut cx, (*metric, *network, zone), cli.output, out, colour).await
        }
        Command::Top { n, by } => {
            let req = v1::ListEdgesRequest {
                sort: sort(*by),
                limit: (*n).clamp(1, 10_000),
                ..Default::default()
            };
            edges(&mut cx, req, cli.output, out, colour).await
        }
        Command::Watch { .. } => Ok(EXIT_OK),
        Command::Diagnose { network, limit } => {
            let req = v1::DiagnoseRequest {
                network: net(*network),
                limit: *limit,
            };
            let d =
                cx.c.diagnose(req)
                    .await
                    .map_err(|e| cx.err(e))?
                    .into_inner();
            crate::diagnose::print(&d, cli.output, out)?;
            Ok(crate::diagnose::exit_code(&d))
        }
        Command::Coverage { limit, node } => {
            let c =
                cx.c.coverage(v1::CoverageRequest {
                    limit: *limit,
                    node: node.clone().unwrap_or_default(),
                })
                .await
                .map_err(|e| cx.err(e))?
                .into_inner();
            crate::coverage::print(&c, cli.output, out)?;
            Ok(EXIT_OK)
        }
        Command::Check {
            max_loss,
            max_p99,
            min_agents,
            expect_nodes,
        } => {
            let limits = Limits {
                max_loss: *max_loss,
                max_p99_ms: *max_p99,
                min_agents: *min_agents,
                expect_nodes: *expect_nodes,
            };
            check(&mut cx, &limits, cli.output, out).await
        }
    }
}

async fn status(
    cx: &mut Ctx<'_>,
    o: Output,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let s =
        cx.c.summary(v1::SummaryRequest {})
            .await
            .map_err(|e| cx.err(e))?
            .into_inner();
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

/// A node's edges in one word: UP when every edge is up, DOWN when every edge is down, UNKNOWN
/// when none has fresh data, DEGRADED for anything in between, `-` without edges.
fn health(n: &v1::Node) -> &'static str {
    let total = n.edges_out;
    if total == 0 {
        "-"
    } else if n.edges_up == total {
        "UP"
    } else if n.edges_down == total {
        "DOWN"
    } else if n.edges_unknown == total {
        "UNKNOWN"
    } else {
        "DEGRADED"
    }
}

fn agent_word(connected: bool) -> &'static str {
    if connected { "connected" } else { "gone" }
}

async fn nodes(
    cx: &mut Ctx<'_>,
    o: Output,
    out: &mut (dyn Write + Send),
    colour: bool,
) -> Result<i32, CliError> {
    let n =
        cx.c.list_nodes(v1::ListNodesRequest {})
            .await
            .map_err(|e| cx.err(e))?
            .into_inner()
            .nodes;
    if o == Output::Json {
        let v: Vec<_> = n
            .iter()
            .map(|n| {
                json!({
                    "name": n.name, "network": network_name(n.network), "addresses": n.addresses,
                    "connected": n.connected, "agent": agent_word(n.connected),
                    "health": health(n).to_lowercase(),
                    "last_report_age_ms": n.last_report_age_ms,
                    "edges_out": n.edges_out, "edges_up": n.edges_up, "edges_down": n.edges_down,
                    "edges_degraded": n.edges_degraded, "edges_unknown": n.edges_unknown,
                    "version": n.version, "generation": n.generation,
                    "assignment_rejected": n.assignment_rejected,
                })
            })
            .collect();
        json_out(out, &json!(v))?;
        return Ok(EXIT_OK);
    }
    let wide = o == Output::Wide;
    // AGENT is the agent's session; HEALTH and EDGES are what its probes see: a connected agent
    // whose every edge is down reads "connected  DOWN  0/6", not "UP".
    let mut header = vec![
        "NODE",
        "NETWORK",
        "AGENT",
        "HEALTH",
        "EDGES(UP/ALL)",
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
                agent_word(n.connected).into(),
                health(n).into(),
                format!("{}/{}", n.edges_up, n.edges_out),
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
    render::table(out, &header, &rows, Some(3), colour)?;
    // An agent that refused its assignment keeps probing its last good one: say so and why.
    for n in n.iter().filter(|n| !n.assignment_rejected.is_empty()) {
        writeln!(
            out,
            "{}/{} refused its latest assignment: {}",
            render::printable(&n.name),
            network_name(n.network),
            render::printable(&n.assignment_rejected)
        )?;
    }
    Ok(EXIT_OK)
}

async fn edges(
    cx: &mut Ctx<'_>,
    req: v1::ListEdgesRequest,
    o: Output,
    out: &mut (dyn Write + Send),
    colour: bool,
) -> Result<i32, CliError> {
    let r = match cx.c.list_edges(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => return Err(cx.named(e).await),
    };
    if o == Output::Json {
        let v: Vec<_> = r.edges.iter().map(edge_json).collect();
        json_out(out, &json!({"edges": v, "total_matched": r.total_matched}))?;
        return Ok(EXIT_OK);
    }
    let wide = o == Output::Wide;
    let rows: Vec<_> = r.edges.iter().map(|e| edge_row(e, wide)).collect();
    render::table(out, &edge_header(wide), &rows, Some(EDGE_STATE_COL), colour)?;
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
    cx: &mut Ctx<'_>,
    src: &str,
    dst: &str,
    o: Output,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    // The aggregator parses node[/network[/address]] on both ends.
    let req = v1::GetEdgeRequest {
        source_node: src.into(),
        target: dst.into(),
        ..Default::default()
    };
    let e = match cx.c.get_edge(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => return Err(cx.named(e).await),
    };
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
            format!(
                "{:.2}% (10s)  {:.2}% (1m)  {:.2}% (10m)",
                e.loss_10s_pct, e.loss_1m_pct, e.loss_10m_pct
            ),
        ),
        (
            "rtt ms",
            if render::is_down(&e) {
                format!(
                    "no replies since the edge went DOWN {} ago  (worst p99 10m {})",
                    age(e.state_age_ms),
                    ms(e.p99_10m_us)
                )
            } else {
                format!(
                    "p50 {}  p90 {}  p99 {}  worst p99 10m {}",
                    ms(e.p50_us),
                    ms(e.p90_us),
                    ms(e.p99_us),
                    ms(e.p99_10m_us)
                )
            },
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
        // Names and addresses came from agents: escaped.
        writeln!(out, "{k:<10} {}", render::printable(&v))?;
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
    for (k, v) in render::rare_lines(&e) {
        writeln!(out, "{k:<10} {v}")?;
    }
    Ok(EXIT_OK)
}

async fn matrix(
    cx: &mut Ctx<'_>,
    (metric, network, zone): (Metric, Option<Network>, Option<String>),
    o: Output,
    out: &mut (dyn Write + Send),
    colour: bool,
) -> Result<i32, CliError> {
    let m =
        cx.c.matrix(v1::MatrixRequest {
            metric: (match metric {
                Metric::Loss => MatrixMetric::Loss,
                Metric::P50 => MatrixMetric::P50,
                Metric::P99 => MatrixMetric::P99,
            }) as i32,
            network: net(network),
            zone,
        })
        .await
        .map_err(|e| cx.err(e))?
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
        writeln!(out, "  [{i}] {}", render::printable(name))?;
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
            } else if m.states.get(i * n + j) == Some(&(EdgeState::Down as i32)) {
                // Marked in words too, so DOWN reads without colour (logs, pipes, NO_COLOR).
                "DOWN".to_string()
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

/// Streams events until stopped. When the stream ends or the aggregator cannot be reached, it
/// says so on stderr and reconnects with [`Backoff`]; only a bad URL or closed output end it.
async fn watch(
    cli: &Cli,
    timeout: Duration,
    req: v1::WatchEventsRequest,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let url = cli.aggregator.as_str();
    let json = cli.output == Output::Json;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut attempts = 0u64;
    if !json {
        writeln!(out, "{WATCH_HEADER}")?;
        out.flush()?;
    }
    loop {
        let opened = async {
            let ch = crate::connect::channel_with(url, cli.tls_ca.as_deref(), timeout).await?;
            let mut c = client(ch);
            let call = c.watch_events(req);
            match tokio::time::timeout(timeout, call).await {
                Ok(r) => r
                    .map(tonic::Response::into_inner)
                    .map_err(|e| crate::connect::status(url, e, timeout)),
                Err(_) => Err(CliError::Timeout {
                    url: url.to_string(),
                    after: timeout,
                }),
            }
        }
        .await;
        let why = match opened {
            Err(e @ CliError::Url(_)) => return Err(e),
            Err(e) => e.to_string(),
            Ok(mut stream) => {
                backoff.reset();
                let again = if attempts > 0 { "re" } else { "" };
                writeln!(
                    err,
                    "echomesh: {again}connected to {url}; waiting for changes (Ctrl-C to stop)"
                )?;
                err.flush()?;
                loop {
                    match stream.message().await {
                        Ok(Some(ev)) => {
                            print_event(&ev, json, out)?;
                            out.flush()?;
                        }
                        Ok(None) => break "the aggregator ended the stream".to_string(),
                        Err(s) => break crate::connect::status(url, s, timeout).to_string(),
                    }
                }
            }
        };
        attempts += 1;
        let wait = backoff.next_wait();
        writeln!(
            err,
            "echomesh: {why}; reconnecting in {:.1}s",
            wait.as_secs_f64()
        )?;
        err.flush()?;
        tokio::time::sleep(wait).await;
    }
}

/// The header `watch` prints above its lines (tables only; JSON stays one object per line).
pub const WATCH_HEADER: &str =
    "TIME                      EVENT  SOURCE -> TARGET ADDRESS  FROM -> TO";

/// `node/network`, escaped: how every table names an agent or a target.
fn end(node: &str, network: i32) -> String {
    render::printable(&format!("{node}/{}", network_name(network)))
}

fn print_event(ev: &v1::Event, json: bool, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    if json {
        serde_json::to_writer(&mut *out, &event_json(ev)).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let at = rfc3339_ms(ev.at_unix_ms);
    let kind = event_kind_name(ev.kind);
    match v1::event::Kind::try_from(ev.kind) {
        Ok(v1::event::Kind::EdgeState) => {
            let planned = if ev.expected_down {
                "  (target node expected down)"
            } else {
                ""
            };
            writeln!(
                out,
                "{at}  edge  {} -> {} {}  {} -> {}{planned}",
                end(&ev.source_node, ev.source_network),
                end(&ev.target_node, ev.target_network),
                render::printable(&ev.target_address),
                state_label(ev.from),
                state_label(ev.to)
            )?;
        }
        Ok(v1::event::Kind::SnapshotDone) => writeln!(out, "{at}  snapshot_done")?,
        // Many edges at once (a storm, or first measurements), counted per zone pair.
        Ok(v1::event::Kind::EdgeStates) => {
            writeln!(out, "{at}  edges  {}", render::printable(&ev.message))?;
        }
        Ok(v1::event::Kind::Lagged) => {
            writeln!(out, "{at}  lagged  {}", render::printable(&ev.message))?
        }
        _ => writeln!(
            out,
            "{at}  {kind}  {}  {}",
            end(&ev.source_node, ev.source_network),
            render::printable(&ev.message)
        )?,
    }
    Ok(())
}

/// What `check` holds the graph to.
struct Limits {
    max_loss: Option<f64>,
    max_p99_ms: Option<f64>,
    min_agents: Option<u32>,
    expect_nodes: Option<u32>,
}

/// Every known edge UP now (and within the optional window limits) and enough agents and nodes → 0,
/// otherwise 1 with the offenders and the missing listed; no agent connected at all → 2 (nothing was checked). Edges
/// whose target node is expected down (cordoned, draining or deleting: Kubernetes discovery) are
/// not checked.
async fn check(
    cx: &mut Ctx<'_>,
    lim: &Limits,
    o: Output,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let nodes =
        cx.c.list_nodes(v1::ListNodesRequest {})
            .await
            .map_err(|e| cx.err(e))?
            .into_inner()
            .nodes;
    let connected = nodes.iter().filter(|n| n.connected).count();
    if connected == 0 {
        return Err(CliError::Check(format!(
            "cannot check: no agent is connected to the aggregator at {} ({} known){}",
            cx.url,
            nodes.len(),
            if nodes.is_empty() {
                String::new()
            } else {
                known_agents(&nodes)
            }
        )));
    }
    let mut missing: Vec<String> = Vec::new();
    if let Some(min) = lim.min_agents
        && (connected as u64) < u64::from(min)
    {
        let gone: Vec<String> = nodes
            .iter()
            .filter(|n| !n.connected)
            .map(|n| end(&n.name, n.network))
            .collect();
        missing.push(format!(
            "{connected} of at least {min} agents connected; gone: {}",
            list_or_none(&gone)
        ));
    }
    if let Some(want) = lim.expect_nodes {
        let mut with: Vec<&str> = nodes
            .iter()
            .filter(|n| n.connected)
            .map(|n| n.name.as_str())
            .collect();
        with.sort_unstable();
        with.dedup();
        if (with.len() as u64) < u64::from(want) {
            let mut without: Vec<String> = nodes
                .iter()
                .filter(|n| !with.contains(&n.name.as_str()))
                .map(|n| render::printable(&n.name))
                .collect();
            without.dedup();
            missing.push(format!(
                "{} of {want} expected nodes have a connected agent; known without one: {}",
                with.len(),
                list_or_none(&without)
            ));
        }
    }
    // Only the offenders cross the wire: the aggregator filters (failing states, then UP edges
    // beyond a limit) and the totals come from Summary, so a cluster of millions of healthy
    // edges costs a few walks on the server and a few rows here, not every edge.
    let sum =
        cx.c.summary(v1::SummaryRequest {})
            .await
            .map_err(|e| cx.err(e))?
            .into_inner();
    let unknown = sum.edges_unknown;
    let failing = v1::ListEdgesRequest {
        states: vec![EdgeState::Down as i32, EdgeState::Degraded as i32],
        sort: EdgeSort::State as i32,
        ..Default::default()
    };
    let (mut bad, expected_down, mut unlisted) = offenders(cx, failing, |_| true).await?;
    // The server's minimums are inclusive, the limits exclusive: ask just above them, so an
    // edge exactly at the limit (often 0) is not even sent.
    if let Some(m) = lim.max_loss.filter(|&m| m < 100.0) {
        let lossy = v1::ListEdgesRequest {
            states: vec![EdgeState::Up as i32],
            min_loss_pct: (m.max(0.0) + 1e-9).min(100.0),
            sort: EdgeSort::Loss as i32,
            ..Default::default()
        };
        let (more, _, n) = offenders(cx, lossy, |e| e.loss_1m_pct > m).await?;
        bad.extend(more);
        unlisted += n;
    }
    if let Some(m) = lim.max_p99_ms {
        let slow = v1::ListEdgesRequest {
            states: vec![EdgeState::Up as i32],
            min_p99_us: (m * 1000.0).max(0.0) + 1e-6,
            sort: EdgeSort::P99 as i32,
            ..Default::default()
        };
        let (more, _, n) = offenders(cx, slow, |e| e.p99_us / 1000.0 > m).await?;
        let seen: std::collections::HashSet<(String, i32, String)> = bad
            .iter()
            .map(|e| {
                (
                    e.source_node.clone(),
                    e.source_network,
                    e.target_address.clone(),
                )
            })
            .collect();
        bad.extend(more.into_iter().filter(|e| {
            !seen.contains(&(
                e.source_node.clone(),
                e.source_network,
                e.target_address.clone(),
            ))
        }));
        unlisted += n;
    }
    let checked = sum.edges.saturating_sub(unknown + expected_down);
    if unlisted > 0 {
        missing.push(format!(
            "{unlisted} more edges outside limits than listed (the first {MAX_OFFENDERS} of each kind are)"
        ));
    }
    let ok = bad.is_empty() && missing.is_empty();
    if o == Output::Json {
        let v: Vec<_> = bad.iter().map(edge_json).collect();
        json_out(
            out,
            &json!({"ok": ok, "checked": checked, "unknown": unknown,
                "expected_down": expected_down, "violations": v,
                "agents_connected": connected, "agents_known": nodes.len(), "missing": missing}),
        )?;
    } else {
        for m in &missing {
            writeln!(out, "FAIL: {m}")?;
        }
        if bad.is_empty() {
            writeln!(
                out,
                "{}: {checked} edges within limits ({unknown} unknown not checked)",
                if ok { "OK" } else { "edges" }
            )?;
        } else {
            writeln!(out, "FAIL: {} of {checked} edges outside limits", bad.len())?;
            let rows: Vec<_> = bad.iter().map(|e| edge_row(e, false)).collect();
            render::table(out, &edge_header(false), &rows, Some(EDGE_STATE_COL), false)?;
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_VIOLATIONS })
}

/// Offenders listed per kind (failing, lossy, slow); beyond, they are counted.
const MAX_OFFENDERS: usize = 10_000;

/// The edges `req` selects that `keep` confirms, without those whose target is expected down
/// (counted apart), at most [`MAX_OFFENDERS`]; and how many more matched than were read.
async fn offenders(
    cx: &mut Ctx<'_>,
    mut req: v1::ListEdgesRequest,
    keep: impl Fn(&v1::Edge) -> bool,
) -> Result<(Vec<v1::Edge>, u64, u64), CliError> {
    req.limit = MAX_OFFENDERS as u32;
    let (mut bad, mut expected_down, mut read) = (Vec::new(), 0u64, 0u64);
    loop {
        let page =
            cx.c.list_edges(req.clone())
                .await
                .map_err(|e| cx.err(e))?
                .into_inner();
        read += page.edges.len() as u64;
        for e in page.edges {
            // The target's node is cordoned, draining or deleting (Kubernetes discovery): planned.
            if e.expected_down {
                expected_down += 1;
            } else if keep(&e) {
                bad.push(e);
            }
        }
        if page.next_page_token.is_empty() || bad.len() >= MAX_OFFENDERS {
            return Ok((bad, expected_down, page.total_matched.saturating_sub(read)));
        }
        req.page_token = page.next_page_token;
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none known".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_agents_are_bounded_and_escaped() {
        let nodes: Vec<v1::Node> = (0..25)
            .map(|i| v1::Node {
                name: format!("n{i}\u{1b}[2J"),
                network: Network::Pod as i32,
                ..v1::Node::default()
            })
            .collect();
        let text = known_agents(&nodes);
        assert!(
            text.starts_with("; known agents: n0\\u{1b}[2J/pod, "),
            "{text}"
        );
        assert!(text.ends_with(" and 5 more (echomesh nodes)"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert_eq!(text.matches("/pod").count(), KNOWN_SHOWN);
        assert_eq!(known_agents(&[]), "; the aggregator knows no agents");
    }

    #[test]
    fn health_says_what_the_edges_say() {
        let n = |up, down, unknown, total| v1::Node {
            edges_up: up,
            edges_down: down,
            edges_unknown: unknown,
            edges_out: total,
            connected: true,
            ..v1::Node::default()
        };
        assert_eq!(health(&n(0, 6, 0, 6)), "DOWN");
        assert_eq!(health(&n(6, 0, 0, 6)), "UP");
        assert_eq!(health(&n(5, 1, 0, 6)), "DEGRADED");
        assert_eq!(health(&n(0, 0, 6, 6)), "UNKNOWN");
        assert_eq!(health(&n(0, 0, 0, 0)), "-");
    }

    #[test]
    fn each_sort_metric_asks_the_server_for_its_own_order() {
        assert_eq!(sort(Metric::Loss), EdgeSort::Loss as i32);
        assert_eq!(sort(Metric::P50), EdgeSort::P50 as i32);
        assert_eq!(sort(Metric::P99), EdgeSort::P99 as i32);
    }
}
