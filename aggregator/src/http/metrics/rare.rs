//! The rare facts on `/metrics`: ICMP errors by kind and refused sends (cluster totals), and the
//! edges marked as MTU black holes with the payload size that fails.
//!
//! Why cluster totals and a capped list: the kinds are a fixed nine, so the error counters never
//! grow with the cluster; black-holed edges are exported one series each (for the alert to name
//! the edge and the size) but only up to the top-K cap, beside an uncapped count.

use std::sync::Arc;

use echomesh_proto::v1::{IcmpErrorKind, Network};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::graph::Graph;
use crate::graph::rare::KINDS;

/// One edge marked as an MTU black hole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtuFigure {
    /// Source node.
    pub src: Arc<str>,
    /// Source agent's network.
    pub src_network: Network,
    /// Target node.
    pub dst: Arc<str>,
    /// Target address.
    pub dst_addr: std::net::IpAddr,
    /// Payload bytes that fail (0 when not known yet).
    pub payload: u32,
}

/// The label value of each kind, in [`IcmpErrorKind`] order (none for UNSPECIFIED).
fn kind_label(i: usize) -> Option<&'static str> {
    let k = i32::try_from(i).ok()?;
    (k != IcmpErrorKind::Unspecified as i32).then(|| echomesh_proto::view::icmp_error_name(k))
}

/// Encodes the error totals and the black-holed edges (`count` of them, `edges` capped).
pub fn encode(
    enc: &mut DescriptorEncoder,
    graph: &Graph,
    count: u64,
    edges: &[MtuFigure],
) -> Result<(), std::fmt::Error> {
    let mut icmp = [0u64; KINDS];
    let mut send_errors = 0u64;
    for (_, a) in graph.rare.agents() {
        for (t, n) in icmp.iter_mut().zip(a.icmp) {
            *t = t.saturating_add(n);
        }
        send_errors = send_errors.saturating_add(a.send_errors);
    }
    {
        let mut m = enc.encode_descriptor(
            "echomesh_icmp_errors",
            "ICMP errors quoting the agents' probes, by kind, all agents together.",
            None,
            MetricType::Counter,
        )?;
        for (i, n) in icmp.iter().enumerate() {
            if let Some(kind) = kind_label(i) {
                ConstCounter::new(*n).encode(m.encode_family(&[("kind", kind)])?)?;
            }
        }
    }
    {
        let c = ConstCounter::new(send_errors);
        c.encode(enc.encode_descriptor(
            "echomesh_send_errors",
            "Probes the agents' kernels refused to send (message too big, no route, ...).",
            None,
            c.metric_type(),
        )?)?;
    }
    {
        let g = ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX));
        g.encode(enc.encode_descriptor(
            "echomesh_mtu_blackhole_edges",
            "Edges whose small probes pass while their large ones are lost or answered with \
             fragmentation needed.",
            None,
            g.metric_type(),
        )?)?;
    }
    {
        // Always described, so the alert rule always finds the family.
        let mut m = enc.encode_descriptor(
            "echomesh_edge_mtu_blackhole",
            "1 for each edge marked as an MTU black hole (at most the top-K cap), with the \
             payload size that fails.",
            None,
            MetricType::Gauge,
        )?;
        for e in edges {
            let payload = e.payload.to_string();
            let addr = e.dst_addr.to_string();
            let labels = [
                ("src", &*e.src),
                ("src_network", Network::name(e.src_network)),
                ("dst", &*e.dst),
                ("dst_addr", addr.as_str()),
                ("payload_bytes", payload.as_str()),
            ];
            ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
