//! `echomesh diagnose`: the aggregator's verdict, the fewest culprits explaining the failing
//! edges, as a table or JSON.
//!
//! Why the CLI renders the fields itself rather than printing the server's sentences only: a
//! table lines culprits up for scripts and eyes alike, and every name in it (nodes and zones come
//! from agents and the Kubernetes API) goes through [`render::table`]'s escaping. Exit code 0 means
//! healthy, 1 means culprits were found, so a cron job can page on it.

use std::io::Write;

use echomesh_proto::v1;
use echomesh_proto::view::{culprit_kind_name, diagnosis_json, direction_name, rfc3339_ms};

use crate::render::{self, age};
use crate::{CliError, EXIT_OK, EXIT_VIOLATIONS, Output};

/// The exit code of a verdict: 0 healthy, 1 culprits found.
#[must_use]
pub fn exit_code(d: &v1::DiagnoseResponse) -> i32 {
    if d.healthy { EXIT_OK } else { EXIT_VIOLATIONS }
}

/// The culprit's subject as tables name it: `node3`, `zone-a`, `node1 -> node2`, `-`.
fn subject(c: &v1::Culprit) -> String {
    if !c.target_node.is_empty() {
        format!("{} -> {}", c.node, c.target_node)
    } else if !c.zone.is_empty() {
        c.zone.clone()
    } else if !c.node.is_empty() {
        c.node.clone()
    } else {
        "-".into()
    }
}

/// Prints `d` as `o` says.
pub fn print(
    d: &v1::DiagnoseResponse,
    o: Output,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    if o == Output::Json {
        serde_json::to_writer_pretty(&mut *out, &diagnosis_json(d))
            .map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if d.healthy {
        writeln!(out, "{}", render::printable(&d.summary))?;
        return Ok(());
    }
    let wide = o == Output::Wide;
    let mut header = vec![
        "KIND",
        "CULPRIT",
        "NETWORK",
        "DIRECTION",
        "FAILING",
        "CONFIDENCE",
        "SINCE",
    ];
    if wide {
        header.extend(["SINCE-UTC", "AGENT"]);
    }
    let rows: Vec<Vec<String>> = d
        .culprits
        .iter()
        .map(|c| {
            let mut r = vec![
                culprit_kind_name(c.kind).to_owned(),
                subject(c),
                echomesh_proto::view::network_name(c.network).to_owned(),
                direction_name(c.direction).to_owned(),
                format!("{}/{}", c.failing_edges, c.total_edges),
                format!("{:.2}", c.confidence),
                if c.since_unix_ms == 0 {
                    "-".into()
                } else {
                    format!(
                        "{} ago",
                        age(d.generated_at_unix_ms.saturating_sub(c.since_unix_ms))
                    )
                },
            ];
            if wide {
                r.push(if c.since_unix_ms == 0 {
                    "-".into()
                } else {
                    rfc3339_ms(c.since_unix_ms)
                });
                r.push(
                    if c.agent_silent {
                        "silent"
                    } else {
                        "reporting"
                    }
                    .into(),
                );
            }
            r
        })
        .collect();
    render::table(out, &header, &rows, None, false)?;
    writeln!(
        out,
        "{} culprit{} explain {} of {} failing edges{}",
        d.culprits.len() as u64 + u64::from(d.culprits_omitted),
        if d.culprits.len() + d.culprits_omitted as usize == 1 {
            ""
        } else {
            "s"
        },
        d.explained_edges,
        d.failing_edges,
        if d.culprits_omitted > 0 {
            format!(" ({} not shown, see --limit)", d.culprits_omitted)
        } else {
            String::new()
        }
    )?;
    Ok(())
}
