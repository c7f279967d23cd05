//! `process_*` series: the aggregator's own CPU, memory, threads and descriptors.
//!
//! Why here and not a separate registry: one scrape, one pass; the figures come from
//! [`echomesh_runtime::procfs`], the one `/proc` reader every binary shares.

use echomesh_runtime::procfs::{self, Proc};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Encodes the `process_*` families of this process (absent figures are left out).
pub(super) fn encode_process(enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let p = procfs::read(Proc::Current);
    if let Some(v) = p.cpu_seconds {
        let c = ConstCounter::new(v);
        c.encode(enc.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent.",
            Some(&Unit::Seconds),
            c.metric_type(),
        )?)?;
    }
    let gauges: [(&str, &str, Option<&Unit>, Option<f64>); 6] = [
        (
            "process_resident_memory",
            "Resident memory size.",
            Some(&Unit::Bytes),
            p.resident_bytes.map(|v| v as f64),
        ),
        (
            "process_virtual_memory",
            "Virtual memory size.",
            Some(&Unit::Bytes),
            p.virtual_bytes.map(|v| v as f64),
        ),
        (
            "process_open_fds",
            "Open file descriptors.",
            None,
            p.open_fds.map(|v| v as f64),
        ),
        (
            "process_max_fds",
            "Limit on open file descriptors.",
            None,
            p.max_fds.map(|v| v as f64),
        ),
        (
            "process_threads",
            "OS threads.",
            None,
            p.threads.map(|v| v as f64),
        ),
        (
            "process_start_time",
            "Start time since the Unix epoch.",
            Some(&Unit::Seconds),
            p.start_time_seconds,
        ),
    ];
    for (name, help, unit, v) in gauges {
        if let Some(v) = v {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(name, help, unit, g.metric_type())?)?;
        }
    }
    Ok(())
}
