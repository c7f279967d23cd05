//! The diagnosis as series: culprits per kind, and the nodes it blames.
//!
//! Why only these: a culprit's identity (a link's two ends, a zone) would make series come and go
//! with every fault; per kind the family has a fixed seven series, always present (0 when none),
//! so an alert can wait on them. Nodes appear in `echomesh_node_blamed` only while blamed (node,
//! pod network or host network), which is bounded by the node count and empty when healthy.
//! From the verdict [`crate::diagnose::Verdicts`] shares (at most a second old), the same one
//! `echomesh diagnose` reads.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::diagnose::{Diagnosis, Kind};

/// Encodes `echomesh_diagnosis_culprits{kind}`, `echomesh_diagnosis_unexplained_edges` and
/// `echomesh_node_blamed{node}` from `d`.
pub(super) fn encode(enc: &mut DescriptorEncoder, d: &Diagnosis) -> Result<(), std::fmt::Error> {
    {
        let mut m = enc.encode_descriptor(
            "echomesh_diagnosis_culprits",
            "Culprits the diagnosis names now, by kind (node, pod-network, host-network, zone, \
             link, agent-silent, view-stale); all 0 when the cluster is healthy.",
            None,
            MetricType::Gauge,
        )?;
        for kind in Kind::ALL {
            let n = d.culprits.iter().filter(|c| c.kind == kind).count();
            ConstGauge::new(n as i64).encode(m.encode_family(&[("kind", kind.name())])?)?;
        }
    }
    {
        let g = ConstGauge::new(i64::from(d.unexplained()));
        g.encode(enc.encode_descriptor(
            "echomesh_diagnosis_unexplained_edges",
            "Failing edges no culprit explains (0 when every failing edge has a culprit).",
            None,
            g.metric_type(),
        )?)?;
    }
    {
        let mut m = enc.encode_descriptor(
            "echomesh_node_blamed",
            "1 for each node the diagnosis blames (the node, its pod network or its host \
             network); no sample for other nodes.",
            None,
            MetricType::Gauge,
        )?;
        let mut blamed: Vec<&str> = d
            .culprits
            .iter()
            .filter(|c| matches!(c.kind, Kind::Node | Kind::PodNetwork | Kind::HostNetwork))
            .map(|c| &*c.subject)
            .collect();
        blamed.sort_unstable();
        blamed.dedup();
        for node in blamed {
            ConstGauge::new(1i64).encode(m.encode_family(&[("node", node)])?)?;
        }
    }
    Ok(())
}
