//! `echomesh coverage`: what the aggregator's pinglist policy guarantees — the time in which every
//! directed pair is probed, and the agents with the fewest full-rate ("fast") probers first — so an
//! operator can show the mesh is complete without reading N² edges.

use std::io::Write;

use echomesh_proto::v1;
use echomesh_proto::view::network_name;
use serde_json::json;

use crate::render::{self, age};
use crate::{CliError, Output};

/// Prints `c` as `o` says.
pub fn print(
    c: &v1::CoverageResponse,
    o: Output,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    if o == Output::Json {
        let v = json!({
            "policy": c.policy,
            "cycle_ms": c.cycle_ms,
            "epoch_ms": c.epoch_ms,
            "fast_probers_wanted": c.fast_probers_wanted,
            "agents_total": c.agents_total,
            "agents": c.agents.iter().map(|a| json!({
                "node": a.node,
                "network": network_name(a.network),
                "fast_probers": a.fast_probers,
            })).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut *out, &v).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let policy = render::printable(&c.policy);
    if c.cycle_ms == 0 {
        writeln!(
            out,
            "pinglist {policy}: every pair probed all the time ({} agents)",
            c.agents_total
        )?;
    } else {
        writeln!(
            out,
            "pinglist {policy}: every pair probed within {} (the rotation moves every {}); {} fast probers wanted; {} agents",
            age(c.cycle_ms),
            age(c.epoch_ms),
            c.fast_probers_wanted,
            c.agents_total
        )?;
    }
    if c.agents.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = c
        .agents
        .iter()
        .map(|a| {
            vec![
                a.node.clone(),
                network_name(a.network).to_owned(),
                a.fast_probers.to_string(),
            ]
        })
        .collect();
    render::table(
        out,
        &["NODE", "NETWORK", "FAST-PROBERS"],
        &rows,
        None,
        false,
    )?;
    if (c.agents.len() as u64) < u64::from(c.agents_total) {
        writeln!(
            out,
            "(the {} with the fewest fast probers of {}; --limit shows more)",
            c.agents.len(),
            c.agents_total
        )?;
    }
    Ok(())
}
