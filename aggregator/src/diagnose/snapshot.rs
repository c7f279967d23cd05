//! Taking a [`Snapshot`] from the live graph.
//!
//! Why a copy: the rule reads every edge several times; copying the few fields it needs, one
//! agent's slab lock at a time, keeps ingest from waiting on the inference. Zones come from
//! Kubernetes discovery when it knows them.

use std::collections::HashMap;

use echomesh_proto::v1::Network;

use super::model::{AgentObs, EdgeObs, Snapshot};
use crate::graph::events::unix_ms;
use crate::graph::{Endpoint, Graph};

/// The edges and agents of `network` (`Unspecified`: both), as of now, and the wall clock
/// (Unix milliseconds) they were taken at.
#[must_use]
pub fn take(graph: &Graph, network: Network) -> (Snapshot, u64) {
    let now = graph.now();
    let now_ms = unix_ms();
    let mut snap = Snapshot::default();
    let endpoints: HashMap<u64, Endpoint> = graph.endpoints().into_iter().collect();
    let expected_down = graph.expected_down_nodes();
    for a in graph.agents() {
        if network != Network::Unspecified && a.key.network != network {
            continue;
        }
        // One lock at a time: never the info lock while holding the slab's.
        let connected = a.info.lock().connected;
        let slab = a.slab.lock();
        snap.agents.push(AgentObs {
            node: a.key.node.clone(),
            plane: a.key.network,
            stale: slab.is_stale() || (!connected && slab.records.is_empty()),
            expected_down: expected_down.contains(&a.key.node),
            last_report_unix_ms: now_ms.saturating_sub(Graph::age_ms(now, slab.last_report)),
        });
        for rec in &slab.records {
            let Some(ep) = endpoints.get(&rec.target_id) else {
                continue;
            };
            snap.edges.push(EdgeObs {
                source: a.key.node.clone(),
                target: ep.node.clone(),
                plane: a.key.network,
                state: rec.state(),
                loss_pct: rec.loss_1m_pct(now).unwrap_or(0.0),
                // Either end planned down (drained, cordoned, deleting) explains the edge.
                expected_down: expected_down.contains(&ep.node)
                    || expected_down.contains(&a.key.node),
                since_unix_ms: now_ms.saturating_sub(Graph::age_ms(now, rec.state_since)),
            });
        }
    }
    snap.zones = graph.node_zones().into_iter().collect();
    (snap, now_ms)
}
