//! What agents report about an edge that is rare on a healthy cluster: the latest ICMP error and
//! next-hop MTU, local send failures, the payload size an MTU black hole swallows, and the
//! lifetime duplicate, reordered, late and ICMP error totals; plus the ICMP error and send-failure
//! totals per source agent, by kind, for `/metrics`.
//!
//! Why beside the records and not in them: the edge record is a fixed few hundred bytes for
//! millions of edges, and these facts exist for a handful of broken edges. A report entry reaches this table
//! only when it carries an error, a refused send or a failing large probe ([`worth_noting`]), so
//! the hot merge path of a healthy edge pays one branch. The record keeps one bit saying an entry
//! exists ([`super::EdgeRecord::has_rare`]), so rendering a healthy edge never looks here.

use dashmap::DashMap;
use echomesh_proto::v1;

use super::identity::AgentKey;
use super::machine::MtuEvidence;

/// ICMP error kinds counted per agent, in [`v1::IcmpErrorKind`] order (index 0 unused).
pub const KINDS: usize = 10;

/// The rare facts of one edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeRare {
    /// The latest ICMP error's kind (`v1::IcmpErrorKind` as i32; 0 none).
    pub last_kind: i32,
    /// Next-hop MTU of the latest fragmentation-needed / packet-too-big error (0 none).
    pub last_mtu: u32,
    /// Lifetime probes the source's kernel refused to send.
    pub send_errors_total: u64,
    /// The largest payload size seen failing while smaller ones passed (0 none).
    pub failing_payload: u32,
    /// Lifetime duplicate replies.
    pub duplicates_total: u64,
    /// Lifetime reordered replies.
    pub reordered_total: u64,
    /// Lifetime late replies.
    pub late_total: u64,
    /// Lifetime ICMP errors (every kind).
    pub icmp_errors_total: u64,
}

/// Per source agent: ICMP errors by kind and refused sends, lifetime totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentErrors {
    /// Errors by [`v1::IcmpErrorKind`] value.
    pub icmp: [u64; KINDS],
    /// Refused sends.
    pub send_errors: u64,
}

/// The table: per edge and per agent.
#[derive(Debug, Default)]
pub struct RareFacts {
    edges: DashMap<(AgentKey, u64), EdgeRare>,
    agents: DashMap<AgentKey, AgentErrors>,
}

/// True when `ts` carries something this table keeps (checked on every merge: cheap).
#[must_use]
pub fn worth_noting(ts: &v1::TargetStats) -> bool {
    ts.send_errors > 0
        || ts.duplicates > 0
        || ts.reordered > 0
        || ts.late > 0
        || ts.errors.as_ref().is_some_and(|e| {
            e.dest_unreachable > 0 || e.time_exceeded > 0 || e.parameter_problem > 0 || e.other > 0
        })
        || large_failing(ts).is_some()
}

/// The payload size of `ts`'s largest probes when they all failed in this window while its
/// smallest probes mostly passed: the evidence of an MTU black hole.
#[must_use]
pub fn large_failing(ts: &v1::TargetStats) -> Option<u32> {
    let small = ts.sizes.iter().min_by_key(|s| s.payload_size)?;
    let large = ts.sizes.iter().max_by_key(|s| s.payload_size)?;
    let passes = small.received > 0 && small.received >= small.lost;
    let fails = large.received == 0 && large.lost.saturating_add(large.too_big) > 0;
    (large.payload_size > small.payload_size && passes && fails).then_some(large.payload_size)
}

/// What `ts`'s payload sizes say about the path MTU, and the (sent, lost) the state machine should
/// judge: the small probes' alone in a black-hole window, everything otherwise.
#[must_use]
pub fn judge_sizes(ts: &v1::TargetStats) -> (MtuEvidence, u64, u64) {
    if ts.sizes.len() < 2 {
        return (MtuEvidence::None, ts.sent, ts.lost);
    }
    if large_failing(ts).is_some() {
        let small = ts.sizes.iter().min_by_key(|s| s.payload_size);
        let (sent, lost) = small.map_or((ts.sent, ts.lost), |s| (s.sent, s.lost));
        return (MtuEvidence::BlackHole, sent, lost);
    }
    let large = ts.sizes.iter().max_by_key(|s| s.payload_size);
    let e = if large.is_some_and(|l| l.received > 0) {
        MtuEvidence::Passes
    } else {
        MtuEvidence::None
    };
    (e, ts.sent, ts.lost)
}

/// The per-kind counts of a wire error block, indexed by [`v1::IcmpErrorKind`] value. An agent
/// that sends only the four classic totals has its unreachables counted as OTHER.
fn kinds(e: &v1::IcmpErrors) -> [u64; KINDS] {
    use v1::IcmpErrorKind as K;
    let mut k = [0u64; KINDS];
    k[K::NetUnreachable as usize] = e.net_unreachable;
    k[K::HostUnreachable as usize] = e.host_unreachable;
    k[K::ProtocolUnreachable as usize] = e.protocol_unreachable;
    k[K::PortUnreachable as usize] = e.port_unreachable;
    k[K::FragNeeded as usize] = e.frag_needed;
    k[K::AdminProhibited as usize] = e.admin_prohibited;
    k[K::TimeExceeded as usize] = e.time_exceeded;
    k[K::ParameterProblem as usize] = e.parameter_problem;
    let fine: u64 = k.iter().take(K::AdminProhibited as usize + 1).sum();
    k[K::Other as usize] = e
        .other
        .saturating_add(e.dest_unreachable.saturating_sub(fine));
    k
}

impl RareFacts {
    /// Takes what `ts` (an entry of `agent`'s report) says; call only when [`worth_noting`].
    pub fn note(&self, agent: &AgentKey, ts: &v1::TargetStats) {
        let mut totals = self.agents.entry(agent.clone()).or_default();
        totals.send_errors = totals.send_errors.saturating_add(ts.send_errors);
        let mut edge = self.edges.entry((agent.clone(), ts.target_id)).or_default();
        edge.send_errors_total = edge.send_errors_total.saturating_add(ts.send_errors);
        edge.duplicates_total = edge.duplicates_total.saturating_add(ts.duplicates);
        edge.reordered_total = edge.reordered_total.saturating_add(ts.reordered);
        edge.late_total = edge.late_total.saturating_add(ts.late);
        if let Some(e) = &ts.errors {
            let n = kinds(e).iter().fold(0u64, |a, &k| a.saturating_add(k));
            edge.icmp_errors_total = edge.icmp_errors_total.saturating_add(n);
            for (t, n) in totals.icmp.iter_mut().zip(kinds(e)) {
                *t = t.saturating_add(n);
            }
            if e.last_kind != 0 {
                edge.last_kind = e.last_kind;
            } else if kinds(e).iter().any(|&n| n > 0) {
                edge.last_kind = v1::IcmpErrorKind::Other as i32;
            }
            if e.last_mtu != 0 {
                edge.last_mtu = e.last_mtu;
            }
        }
        if let Some(size) = large_failing(ts) {
            edge.failing_payload = size;
        }
    }

    /// The rare facts of edge `agent` → `target_id`, if any.
    #[must_use]
    pub fn edge(&self, agent: &AgentKey, target_id: u64) -> Option<EdgeRare> {
        self.edges
            .get(&(agent.clone(), target_id))
            .map(|e| *e.value())
    }

    /// Every agent's totals.
    #[must_use]
    pub fn agents(&self) -> Vec<(AgentKey, AgentErrors)> {
        self.agents
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect()
    }

    /// Forgets the edges of `agent` whose target is no longer in `targets`.
    pub fn retain_targets(&self, agent: &AgentKey, targets: &[u64]) {
        self.edges
            .retain(|(a, id), _| a != agent || targets.contains(id));
    }

    /// Forgets an agent that left the graph.
    pub fn remove_agent(&self, agent: &AgentKey) {
        self.agents.remove(agent);
        self.edges.retain(|(a, _), _| a != agent);
    }
}

#[cfg(test)]
mod tests;
