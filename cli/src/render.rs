//! Tables, wide tables and JSON for the CLI; colour only when stdout is a terminal.
//!
//! Tables are plain aligned columns (no box drawing) so they survive `grep`, `awk` and logs.

use std::io::{self, IsTerminal as _, Write};

use echomesh_proto::v1::{self, EdgeState};
use echomesh_proto::view::network_name;

/// `s` with every control character escaped (`\u{1b}`, `\n`), so text that came from the
/// network or the Kubernetes API cannot move the cursor, recolour the terminal or forge a line.
#[must_use]
pub fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Whether to colour output: `NO_COLOR` unset, and a terminal or `CLICOLOR_FORCE` set to
/// something other than `0` (for a program that shows our output on its own terminal, like the
/// lab's demo).
#[must_use]
pub fn colour() -> bool {
    colour_for(
        io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").is_some(),
        std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0"),
    )
}

fn colour_for(terminal: bool, no_color: bool, forced: bool) -> bool {
    !no_color && (terminal || forced)
}

/// Upper-case state label for tables (JSON uses `echomesh_proto::view::state_name`).
#[must_use]
pub fn state_label(s: i32) -> &'static str {
    match EdgeState::try_from(s) {
        Ok(EdgeState::Up) => "UP",
        Ok(EdgeState::Degraded) => "DEGRADED",
        Ok(EdgeState::Down) => "DOWN",
        Ok(EdgeState::Unknown) => "UNKNOWN",
        _ => "-",
    }
}

fn paint(s: &str, state: i32, on: bool) -> String {
    if !on {
        return s.to_string();
    }
    let code = match EdgeState::try_from(state) {
        Ok(EdgeState::Up) => "32",
        Ok(EdgeState::Degraded) => "33",
        Ok(EdgeState::Down) => "31",
        _ => "90",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

/// Writes rows as aligned columns; `state_col` (if any) is coloured by the state it names.
pub fn table(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
    state_col: Option<usize>,
    colour: bool,
) -> io::Result<()> {
    // Cells carry names and versions that agents and the Kubernetes API chose: escape them before
    // measuring, so a control character can neither reach the terminal nor break the alignment.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < width.len() {
                width[i] = width[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let n = cells.len();
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    c
                } else {
                    format!("{c:<w$}", w = width[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(
        out,
        "{}",
        line(header.iter().map(|h| (*h).to_string()).collect())
    )?;
    for r in rows {
        let mut cells = r.clone();
        if let Some(sc) = state_col {
            let state = match cells[sc].as_str() {
                "UP" => EdgeState::Up,
                "DEGRADED" => EdgeState::Degraded,
                "DOWN" => EdgeState::Down,
                _ => EdgeState::Unknown,
            } as i32;
            let padded = format!("{:<w$}", cells[sc], w = width[sc]);
            cells[sc] = paint(&padded, state, colour);
        }
        // Pad after painting so escape codes do not upset alignment.
        let n = cells.len();
        let s = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n || Some(i) == state_col {
                    c
                } else {
                    format!("{c:<w$}", w = width[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ");
        writeln!(out, "{s}")?;
    }
    Ok(())
}

/// Milliseconds from microseconds, 3 significant decimals.
#[must_use]
pub fn ms(us: f64) -> String {
    if us <= 0.0 {
        "-".into()
    } else {
        format!("{:.3}", us / 1000.0)
    }
}

/// Age in human form.
#[must_use]
pub fn age(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{}s", ms / 1000),
        60_000..=3_599_999 => format!("{}m", ms / 60_000),
        _ => format!("{}h", ms / 3_600_000),
    }
}

/// The column of [`edge_row`] that holds the state (coloured on a terminal).
pub const EDGE_STATE_COL: usize = 3;

/// An edge as a table row; `wide` adds columns. The target address is always shown: a dual-stack
/// node has one IPv4 and one IPv6 edge per network, and without it the two rows look the same.
/// `SOURCE`, `TARGET` and `ADDRESS` together are a name `edge` and `edges --to` accept.
#[must_use]
pub fn edge_row(e: &v1::Edge, wide: bool) -> Vec<String> {
    // A DOWN edge gets no replies: its percentiles describe the time before the outage, so the
    // table shows none rather than figures that read as current.
    let rtt = |us: f64| if is_down(e) { "-".to_string() } else { ms(us) };
    let mut r = vec![
        format!("{}/{}", e.source_node, network_name(e.source_network)),
        format!("{}/{}", e.target_node, network_name(e.target_network)),
        e.target_address.clone(),
        if e.mtu_blackhole_payload == 0 {
            state_label(e.state).to_string()
        } else {
            // The MTU black hole is a condition beside the state: both are shown.
            format!("{} MTU", state_label(e.state))
        },
        format!("{:.2}", e.loss_1m_pct),
        rtt(e.p50_us),
        rtt(e.p99_us),
    ];
    if wide {
        r.extend([
            format!("{:.2}", e.loss_10s_pct),
            format!("{:.2}", e.loss_10m_pct),
            ms(e.p99_10m_us),
            e.sent_total.to_string(),
            e.duplicates_total.to_string(),
            e.reordered_total.to_string(),
            e.icmp_errors_total.to_string(),
            age(e.state_age_ms),
        ]);
    }
    r
}

/// The lines `echomesh edge` adds for an edge with ICMP errors, refused sends or an MTU black
/// hole (none for a healthy edge).
#[must_use]
pub fn rare_lines(e: &v1::Edge) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if e.icmp_errors_total > 0 || e.send_errors_total > 0 {
        let mut v = format!(
            "icmp {}  last {}",
            e.icmp_errors_total,
            echomesh_proto::view::icmp_error_name(e.last_icmp_error)
        );
        if e.last_mtu != 0 {
            v.push_str(&format!(" (next-hop MTU {})", e.last_mtu));
        }
        v.push_str(&format!("  refused sends {}", e.send_errors_total));
        out.push(("errors", v));
    }
    if e.mtu_blackhole_payload != 0 {
        out.push((
            "mtu",
            format!(
                "BLACK HOLE: {}-byte payloads are lost or need fragmentation while small probes pass",
                e.mtu_blackhole_payload
            ),
        ));
    }
    out
}

/// True for an edge the state machine holds DOWN.
#[must_use]
pub fn is_down(e: &v1::Edge) -> bool {
    e.state == EdgeState::Down as i32
}

/// Column names matching [`edge_row`].
#[must_use]
pub fn edge_header(wide: bool) -> Vec<&'static str> {
    let mut h = vec![
        "SOURCE", "TARGET", "ADDRESS", "STATE", "LOSS%", "P50ms", "P99ms",
    ];
    if wide {
        h.extend([
            "LOSS10s%", "LOSS10m%", "P99-10m", "SENT", "DUP", "REORD", "ICMPERR", "SINCE",
        ]);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_edge_shows_no_stale_percentiles() {
        let mut e = v1::Edge {
            state: EdgeState::Down as i32,
            p50_us: 5880.0,
            p99_us: 46_000.0,
            ..v1::Edge::default()
        };
        let row = edge_row(&e, false);
        assert_eq!(&row[5..7], ["-", "-"], "{row:?}");
        e.state = EdgeState::Up as i32;
        let row = edge_row(&e, false);
        assert_ne!(row[5], "-", "{row:?}");
    }

    #[test]
    fn errors_and_an_mtu_black_hole_are_shown_and_a_healthy_edge_adds_nothing() {
        let healthy = v1::Edge {
            state: EdgeState::Up as i32,
            ..v1::Edge::default()
        };
        assert!(rare_lines(&healthy).is_empty());
        assert_eq!(edge_row(&healthy, false)[3], "UP");
        let hole = v1::Edge {
            icmp_errors_total: 4,
            last_icmp_error: v1::IcmpErrorKind::FragNeeded as i32,
            last_mtu: 1000,
            send_errors_total: 1,
            mtu_blackhole_payload: 1372,
            ..healthy
        };
        assert_eq!(
            rare_lines(&hole),
            [
                (
                    "errors",
                    "icmp 4  last frag_needed (next-hop MTU 1000)  refused sends 1".to_string()
                ),
                (
                    "mtu",
                    "BLACK HOLE: 1372-byte payloads are lost or need fragmentation while small \
                     probes pass"
                        .to_string()
                ),
            ]
        );
        assert_eq!(edge_row(&hole, false)[3], "UP MTU");
    }

    #[test]
    fn wide_rows_carry_the_ten_second_window_beside_the_ten_minute_one() {
        let e = v1::Edge {
            loss_10s_pct: 20.0,
            loss_1m_pct: 5.0,
            loss_10m_pct: 0.5,
            ..v1::Edge::default()
        };
        let header = edge_header(true);
        let row = edge_row(&e, true);
        assert_eq!(header.len(), row.len());
        let col = |name: &str| {
            let i = header.iter().position(|h| *h == name).expect(name);
            row[i].clone()
        };
        assert_eq!(col("LOSS%"), "5.00");
        assert_eq!(col("LOSS10s%"), "20.00");
        assert_eq!(col("LOSS10m%"), "0.50");
    }

    #[test]
    fn colour_follows_no_color_and_clicolor_force() {
        assert!(colour_for(true, false, false));
        assert!(!colour_for(false, false, false));
        assert!(
            colour_for(false, false, true),
            "forced for the demo's redraw"
        );
        assert!(!colour_for(true, true, true), "NO_COLOR wins");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            printable("Unknown since x (\u{1b}]0;pwned\u{7}\nfake row)"),
            "Unknown since x (\\u{1b}]0;pwned\\u{7}\\nfake row)"
        );
        assert_eq!(printable("plain – text"), "plain – text");
    }

    #[test]
    fn table_cells_cannot_forge_rows_or_reach_the_terminal() {
        let mut out = Vec::new();
        let rows = vec![vec![
            "node1".to_string(),
            "v1\r\nnode9  UP\u{1b}[2J".to_string(),
        ]];
        table(&mut out, &["NODE", "VERSION"], &rows, None, false).expect("table");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
        assert!(text.contains("v1\\r\\nnode9  UP\\u{1b}[2J"), "{text}");
    }
}
