//! The live cluster graph: the bottom layer, which every other layer reads or feeds.
//!
//! Why one layer with no upward imports: the graph is the hot path (reports merge here) and the
//! one shared state, so it must not depend on how it is fed (ingest), who decides what is probed
//! (policy) or how it is shown (api, http). Each concept has one file:
//! - [`identity`]: agent keys, endpoints, stable target ids.
//! - [`record`]: one fixed-size edge record and the merge of one report entry into it.
//! - [`sketch`]: the per-edge RTT sketch inside each record.
//! - [`window`]: the per-edge 10 s, 1 min and 10 min loss windows inside each record.
//! - [`machine`]: the edge state machine with hysteresis, pure and clock-injected.
//! - [`rare`]: errors, refused sends and MTU black holes, kept beside the records.
//! - [`events`]: the state-change events the store emits, and their fan-out.
//! - [`store`]: the per-agent slabs, the endpoint registry and the sweep.

pub mod events;
pub mod identity;
pub mod machine;
pub mod rare;
pub mod record;
pub mod sketch;
pub mod store;
pub mod window;

pub use events::{EventHub, GraphEvent, Subscription};
pub use identity::{AgentKey, Endpoint, IdHasher, IdMap, endpoint_id, first_per_family};
pub use machine::Thresholds;
pub use record::{EdgeRecord, accumulate};
pub use store::{
    AgentEntry, AgentInfo, Graph, GraphConfig, GraphCounters, MergeOutcome, ReportError, Slab,
};

#[cfg(test)]
mod tests;
