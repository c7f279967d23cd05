//! `echomesh nodes --summary` and `echomesh zones`: the views that stay readable at thousands of
//! nodes — one row per node, worst first, and a zone-by-zone grid — where `matrix` (N×N) and
//! `edges` (N² rows) do not.
//!
//! Zones are printed as the aggregator names them, with the zone of nodes whose zone is unknown
//! ("") shown as `-`, which is also how `--zone` names it.

use std::io::Write;

use echomesh_proto::v1;
use serde_json::{Value, json};

use crate::render::{self, ms};
use crate::{CliError, Output};

/// A zone as tables print it: `-` for the unknown zone "".
#[must_use]
pub fn zone_label(z: &str) -> String {
    if z.is_empty() {
        "-".into()
    } else {
        render::printable(z)
    }
}

/// A `--zone` argument as the request field: `-` names the unknown zone "".
#[must_use]
pub fn zone_arg(z: Option<&str>) -> Option<String> {
    z.map(|z| {
        if z == "-" {
            String::new()
        } else {
            z.to_owned()
        }
    })
}

fn direction_json(d: &v1::NodeDirection) -> Value {
    json!({
        "up": d.up, "degraded": d.degraded, "down": d.down, "unknown": d.unknown,
        "loss_pct": d.loss_pct, "loss_10s_pct": d.loss_10s_pct, "p99_us": d.p99_us,
    })
}

/// Prints one page of `NodeSummary` as `o` says.
pub fn print_nodes(
    r: &v1::NodeSummaryResponse,
    o: Output,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let dir = |d: Option<&v1::NodeDirection>| d.copied().unwrap_or_default();
    if o == Output::Json {
        let nodes: Vec<Value> = r
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "node": n.node, "zone": n.zone, "probers": n.probers,
                    "in": direction_json(&dir(n.r#in.as_ref())),
                    "out": direction_json(&dir(n.out.as_ref())),
                    "badness": n.badness,
                })
            })
            .collect();
        let v = json!({"nodes": nodes, "total": r.total, "next_page_token": r.next_page_token});
        serde_json::to_writer_pretty(&mut *out, &v).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let wide = o == Output::Wide;
    let mut header = vec![
        "NODE",
        "ZONE",
        "PROBERS",
        "IN-DOWN",
        "IN-LOSS%",
        "IN-P99",
        "OUT-DOWN",
        "OUT-LOSS%",
        "OUT-P99",
        "BADNESS",
    ];
    if wide {
        header.extend([
            "IN(UP/DEG/DOWN/UNK)",
            "OUT(UP/DEG/DOWN/UNK)",
            "IN-LOSS10s%",
            "OUT-LOSS10s%",
        ]);
    }
    let counts =
        |d: &v1::NodeDirection| format!("{}/{}/{}/{}", d.up, d.degraded, d.down, d.unknown);
    let rows: Vec<Vec<String>> = r
        .nodes
        .iter()
        .map(|n| {
            let (i, o) = (dir(n.r#in.as_ref()), dir(n.out.as_ref()));
            let mut row = vec![
                n.node.clone(),
                zone_label(&n.zone),
                n.probers.to_string(),
                i.down.to_string(),
                format!("{:.1}", i.loss_pct),
                ms(i.p99_us),
                o.down.to_string(),
                format!("{:.1}", o.loss_pct),
                ms(o.p99_us),
                format!("{:.0}", n.badness),
            ];
            if wide {
                row.extend([
                    counts(&i),
                    counts(&o),
                    format!("{:.1}", i.loss_10s_pct),
                    format!("{:.1}", o.loss_10s_pct),
                ]);
            }
            row
        })
        .collect();
    render::table(out, &header, &rows, None, false)?;
    if (r.nodes.len() as u64) < u64::from(r.total) {
        writeln!(
            out,
            "({} of {} nodes, worst first unless --sort name; --limit shows more)",
            r.nodes.len(),
            r.total
        )?;
    }
    Ok(())
}

/// The text of one zone-grid cell: `DOWN d/e` when some edges are DOWN, the loss otherwise.
fn cell_text(c: &v1::ZoneCell) -> String {
    if c.down > 0 {
        format!("DOWN {}/{}", c.down, c.edges)
    } else {
        format!("{:.1}%", c.loss_pct)
    }
}

fn paint(s: &str, c: &v1::ZoneCell) -> String {
    let code = if c.down > 0 {
        "31"
    } else if c.degraded > 0 || c.loss_pct > 0.0 {
        "33"
    } else if c.up > 0 {
        "32"
    } else {
        "90"
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

/// Prints `ZoneMatrix` as a grid (rows source zones, columns target zones) or JSON.
pub fn print_zones(
    r: &v1::ZoneMatrixResponse,
    o: Output,
    out: &mut (dyn Write + Send),
    colour: bool,
) -> Result<(), CliError> {
    if o == Output::Json {
        let cells: Vec<Value> = r
            .cells
            .iter()
            .map(|c| {
                json!({
                    "from_zone": c.from_zone, "to_zone": c.to_zone, "edges": c.edges,
                    "up": c.up, "degraded": c.degraded, "down": c.down, "unknown": c.unknown,
                    "loss_pct": c.loss_pct, "p99_us": c.p99_us,
                })
            })
            .collect();
        let v = json!({"zones": r.zones, "cells": cells});
        serde_json::to_writer_pretty(&mut *out, &v).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if r.zones.is_empty() {
        writeln!(out, "no edges yet")?;
        return Ok(());
    }
    writeln!(
        out,
        "loss % over the last minute (DOWN: edges DOWN / edges), rows = source zone, columns = target zone"
    )?;
    for (i, z) in r.zones.iter().enumerate() {
        writeln!(out, "  [{i}] {}", zone_label(z))?;
    }
    let index = |z: &str| r.zones.iter().position(|x| x == z);
    let n = r.zones.len();
    let mut grid: Vec<Option<&v1::ZoneCell>> = vec![None; n * n];
    for c in &r.cells {
        if let (Some(i), Some(j)) = (index(&c.from_zone), index(&c.to_zone)) {
            grid[i * n + j] = Some(c);
        }
    }
    let width = grid
        .iter()
        .flatten()
        .map(|c| cell_text(c).len())
        .max()
        .unwrap_or(1)
        .max(5);
    write!(out, "{:>5}", "")?;
    for j in 0..n {
        write!(out, " {:>width$}", format!("[{j}]"))?;
    }
    writeln!(out)?;
    for i in 0..n {
        write!(out, "{:>5}", format!("[{i}]"))?;
        for j in 0..n {
            match grid[i * n + j] {
                None => write!(out, " {:>width$}", "-")?,
                Some(c) => {
                    let padded = format!(" {:>width$}", cell_text(c));
                    if colour {
                        write!(out, "{}", paint(&padded, c))?;
                    } else {
                        write!(out, "{padded}")?;
                    }
                }
            }
        }
        writeln!(out)?;
    }
    if o == Output::Wide {
        let rows: Vec<Vec<String>> = r
            .cells
            .iter()
            .map(|c| {
                vec![
                    zone_label(&c.from_zone),
                    zone_label(&c.to_zone),
                    c.edges.to_string(),
                    format!("{}/{}/{}/{}", c.up, c.degraded, c.down, c.unknown),
                    format!("{:.1}", c.loss_pct),
                    ms(c.p99_us),
                ]
            })
            .collect();
        writeln!(out)?;
        render::table(
            out,
            &["FROM", "TO", "EDGES", "UP/DEG/DOWN/UNK", "LOSS%", "P99"],
            &rows,
            None,
            false,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_zone_reads_and_is_named_as_a_dash() {
        assert_eq!(zone_label(""), "-");
        assert_eq!(zone_label("eu-1a"), "eu-1a");
        assert_eq!(zone_label("a\u{1b}[2J"), "a\\u{1b}[2J");
        assert_eq!(zone_arg(Some("-")).as_deref(), Some(""));
        assert_eq!(zone_arg(Some("eu-1a")).as_deref(), Some("eu-1a"));
        assert_eq!(zone_arg(None), None);
    }

    #[test]
    fn the_zone_grid_marks_down_cells_in_words_and_escapes_names() {
        let cell = |f: &str, t: &str, down: u64, loss: f64| v1::ZoneCell {
            from_zone: f.into(),
            to_zone: t.into(),
            edges: 55,
            up: 55 - down,
            down,
            loss_pct: loss,
            ..v1::ZoneCell::default()
        };
        let r = v1::ZoneMatrixResponse {
            zones: vec!["a\n".into(), String::new()],
            cells: vec![cell("a\n", "", 55, 100.0), cell("", "a\n", 0, 0.25)],
        };
        let mut out = Vec::new();
        print_zones(&r, Output::Table, &mut out, false).expect("printed");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("  [0] a\\n\n"), "{text}");
        assert!(text.contains("  [1] -\n"), "{text}");
        assert!(text.contains("DOWN 55/55"), "{text}");
        assert!(text.contains("0.2%") || text.contains("0.3%"), "{text}");
    }
}
