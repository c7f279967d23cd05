//! `echomesh coverage`: what the aggregator's pinglist policy guarantees — the time in which every
//! directed pair is probed, and the agents with the fewest full-rate ("fast") probers first — and
//! what was done: the pairs not probed within the coverage period and the oldest pair, and with
//! `--node` every prober of that node with the age of its last probe, so an operator can show the
//! mesh is complete without reading N² edges.

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
            "period_ms": c.period_ms,
            "pairs": c.pairs,
            "pairs_overdue": c.pairs_overdue,
            "pairs_never_probed": c.pairs_never_probed,
            "oldest_pair_age_ms": c.oldest_pair_age_ms,
        });
        let mut v = v;
        if !c.inbound.is_empty() || c.inbound_total > 0 {
            v["inbound_total"] = json!(c.inbound_total);
            v["inbound"] = c
                .inbound
                .iter()
                .map(|p| {
                    json!({
                        "prober_node": p.prober_node,
                        "prober_network": network_name(p.prober_network),
                        "target_network": network_name(p.target_network),
                        "target_address": p.target_address,
                        "last_probed_age_ms": p.probed.then_some(p.last_probed_age_ms),
                        "in_pinglist": p.in_pinglist,
                    })
                })
                .collect::<Vec<_>>()
                .into();
        }
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
    writeln!(
        out,
        "pairs: {} between connected agents, {} not probed within {} ({} never), oldest {}",
        c.pairs,
        c.pairs_overdue,
        age(c.period_ms),
        c.pairs_never_probed,
        age(c.oldest_pair_age_ms)
    )?;
    if c.inbound_total > 0 {
        return inbound(c, out);
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

/// The probers of one node, oldest first, after its fast-prober counts.
fn inbound(c: &v1::CoverageResponse, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    for a in &c.agents {
        writeln!(
            out,
            "{}/{}: {} fast probers",
            render::printable(&a.node),
            network_name(a.network),
            a.fast_probers
        )?;
    }
    let rows: Vec<Vec<String>> = c
        .inbound
        .iter()
        .map(|p| {
            vec![
                format!(
                    "{}/{}",
                    render::printable(&p.prober_node),
                    network_name(p.prober_network)
                ),
                format!(
                    "{}/{}",
                    network_name(p.target_network),
                    render::printable(&p.target_address)
                ),
                if p.probed {
                    age(p.last_probed_age_ms)
                } else {
                    "never".to_owned()
                },
                if p.in_pinglist { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    render::table(
        out,
        &["PROBER", "TARGET", "LAST-PROBED", "PROBING-NOW"],
        &rows,
        None,
        false,
    )?;
    if (c.inbound.len() as u64) < u64::from(c.inbound_total) {
        writeln!(
            out,
            "(the {} oldest of {} probers' pairs; --limit shows more)",
            c.inbound.len(),
            c.inbound_total
        )?;
    }
    Ok(())
}
