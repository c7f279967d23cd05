//! The pinglist policy's guarantees as series: the fewest fast probers any agent has per
//! network, and the time in which every directed pair is probed at least once.
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
/// and `echomesh_pinglist_coverage_cycle_seconds` (nothing under a policy without figures).
pub fn encode(enc: &mut DescriptorEncoder, ingest: &Ingest) -> Result<(), std::fmt::Error> {
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

fn network_label(n: echomesh_proto::v1::Network) -> &'static str {
    match n {
        echomesh_proto::v1::Network::Host => "host",
        _ => "pod",
    }
}
