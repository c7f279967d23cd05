//! Building the namespaces of a [`Plan`] and tearing them down again, whatever happens.
//!
//! [`Topology::build`] records each namespace the moment it exists, so if any later step fails
//! (or the caller panics) `Drop` still removes exactly what was made. Teardown first stops every
//! process inside the lab's namespaces (a process would keep a deleted namespace alive), then
//! deletes the namespaces; the veths, the bridge, the VXLAN devices and any nftables table go
//! with them, so nothing in the root namespace ever needs undoing.

use std::collections::BTreeSet;

use crate::cmd::{Cmd, CmdError, run_all};
use crate::naming::Prefix;
use crate::plan::Plan;
use crate::procs::{GRACE, stop_all_in_ns};

/// A lab's namespaces could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A setup command failed.
    #[error("building the lab failed: {0}")]
    Setup(#[from] CmdError),
}

/// The namespaces of a lab, deleted on drop.
#[derive(Debug)]
pub struct Topology {
    plan: Plan,
    created: Vec<String>,
}

impl Topology {
    /// Creates the namespaces and runs the plan's setup commands.
    pub fn build(plan: Plan) -> Result<Topology, TopologyError> {
        let mut topo = Topology {
            plan,
            created: Vec::new(),
        };
        for ns in topo.plan.namespaces() {
            Cmd::ip(None, ["netns", "add", &ns]).run()?;
            topo.created.push(ns);
        }
        run_all(&topo.plan.setup())?;
        tracing::info!(prefix = %topo.plan.prefix, nodes = topo.plan.nodes.len(), "lab built");
        Ok(topo)
    }

    /// The plan this topology was built from.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Stops the processes in the lab's namespaces and deletes the namespaces. Idempotent.
    pub fn teardown(&mut self) {
        delete_namespaces(&self.created);
        self.created.clear();
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Stops every process inside `namespaces` and deletes them; logs what could not be done.
/// Returns how many namespaces are gone.
pub fn delete_namespaces(namespaces: &[String]) -> usize {
    // Stop processes everywhere first (pod agents, host agents, relays) ...
    for ns in namespaces {
        if let Err(e) = stop_all_in_ns(ns, GRACE) {
            tracing::debug!(ns, error = %e, "listing processes failed");
        }
    }
    // ... then delete, pods and hosts before the fabric.
    let mut gone = 0;
    for ns in namespaces.iter().rev() {
        match Cmd::ip(None, ["netns", "del", ns]).run() {
            Ok(_) => gone += 1,
            Err(e) => {
                if existing_namespaces().is_ok_and(|all| !all.contains(ns)) {
                    gone += 1;
                } else {
                    tracing::warn!(ns, error = %e, "could not delete namespace");
                }
            }
        }
    }
    gone
}

/// Names of all named network namespaces (`ip netns list`).
pub fn existing_namespaces() -> Result<BTreeSet<String>, CmdError> {
    let out = Cmd::ip(None, ["netns", "list"]).run()?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Namespaces that belong to lab `prefix`.
pub fn namespaces_of(prefix: &Prefix) -> Result<Vec<String>, CmdError> {
    let mut out: Vec<String> = existing_namespaces()?
        .into_iter()
        .filter(|ns| prefix.owns(ns))
        .collect();
    // Fabric last when deleting in reverse: put it first.
    out.sort_by_key(|ns| (!ns.ends_with("-fabric"), ns.clone()));
    Ok(out)
}
