//! The pinglist policy's guarantees as series: the fewest fast probers any agent has per
//! network, and the time in which every directed pair is probed at least once; and whether it was
//! kept: the oldest directed pair's age and the pairs overdue against the coverage period.
//!
//! Why a minimum and not per node: per-node series would be 10,000 at 5,000 nodes for a figure
//! whose only question is "does every node still have its k probers"; the minimum answers it
//! with two series. A node that lacks them shows in the aggregator's log and tests.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use crate::ingest::Ingest;

/// Encodes `echomesh_pinglist_fast_probers_min{network}`, `echomesh_pinglist_agents{network}`
/// and `echomesh_pinglist_coverage_cycle_seconds` (nothing under a policy without figures), and
/// under every policy the per-pair figures (`echomesh_coverage_*`).
pub fn encode(enc: &mut DescriptorEncoder, ingest: &Ingest) -> Result<(), std::fmt::Error> {
    encode_pairs(enc, ingest)?;
    let Some(cov) = ingest.coverage() else {
        return Ok(());
    };
    {
        let mut m = enc.encode_descriptor(
            "echomesh_pinglist_fast_probers_min",
            "Fewest agents probing any one agent of the network at the full rate (all of them while the full mesh fits the budget).",
            None,
            MetricType::Gauge,
        )?;
        for (net, (min, _)) in &cov.fast_probers_min {
            let labels = [("network", network_label(*net))];
            ConstGauge::new(i64::from(*min)).encode(m.encode_family(&labels)?)?;
        }
    }
    {
        let mut m = enc.encode_descriptor(
            "echomesh_pinglist_agents",
            "Agents the pinglist plan covers, per network.",
            None,
            MetricType::Gauge,
        )?;
        for (net, (_, agents)) in &cov.fast_probers_min {
            let labels = [("network", network_label(*net))];
            ConstGauge::new(*agents as i64).encode(m.encode_family(&labels)?)?;
        }
    }
    let g = ConstGauge::new(cov.cycle.as_secs_f64());
    g.encode(enc.encode_descriptor(
        "echomesh_pinglist_coverage_cycle",
        "Time in which every directed pair is probed at least once (0: the full mesh, every pair all the time).",
        Some(&Unit::Seconds),
        g.metric_type(),
    )?)?;
    Ok(())
}

/// What was actually probed, from the per-pair ledger: four series whatever the cluster's size.
fn encode_pairs(enc: &mut DescriptorEncoder, ingest: &Ingest) -> Result<(), std::fmt::Error> {
    let s = ingest.pair_summary();
    let g = ConstGauge::new(s.oldest_age.as_secs_f64());
    g.encode(enc.encode_descriptor(
        "echomesh_coverage_oldest_pair",
        "Age of the least recently probed directed pair between agents connected for a whole coverage period (never-probed pairs count from when both ends were there); above the period when a pair is overdue.",
        Some(&Unit::Seconds),
        g.metric_type(),
    )?)?;
    let g = ConstGauge::new(s.period.as_secs_f64());
    g.encode(enc.encode_descriptor(
        "echomesh_coverage_period",
        "Every directed pair should be probed within this (--coverage-period).",
        Some(&Unit::Seconds),
        g.metric_type(),
    )?)?;
    for (name, help, v) in [
        (
            "echomesh_coverage_pairs",
            "Directed pairs between connected agents (every address of every other node's agents).",
            s.pairs,
        ),
        (
            "echomesh_coverage_pairs_overdue",
            "Directed pairs whose both ends have been connected for a whole coverage period, yet not probed within it.",
            s.overdue,
        ),
    ] {
        let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
        g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
    }
    Ok(())
}

fn network_label(n: echomesh_proto::v1::Network) -> &'static str {
    match n {
        echomesh_proto::v1::Network::Host => "host",
        _ => "pod",
    }
}
