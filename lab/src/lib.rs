//! echomesh-lab: a simulated Kubernetes cluster in network namespaces, for the demo and the
//! end-to-end tests.
//!
//! Each node is a host namespace on a shared underlay bridge plus a pod namespace behind it; pods
//! reach each other over a flannel-style VXLAN overlay. The real `echomesh-aggregator` and two
//! `echomesh-agent`s per node run inside; faults (cut, loss, delay) are injected on a node's
//! underlay link. Everything lives in namespaces named after one unique prefix, so a lab never
//! touches the machine's own network and can always be removed by prefix.
//!
//! Modules:
//! - [`naming`]: prefixes, namespace and node names
//! - [`family`]: IPv4, dual-stack or IPv6-only, and what each means for the overlay
//! - [`plan`]: the topology as data and the command lines that build it (pure)
//! - [`cmd`]: running `ip`/`nft`/`sysctl` command lines
//! - [`topology`]: creating and deleting a plan's namespaces (cleanup on drop)
//! - [`procs`]: spawned processes tracked by PID, stopped on drop
//! - [`fault`]: cut / heal / loss / delay / clear
//! - [`relay`]: the TUN delay relay (`echomesh-lab relay`)
//! - [`state`]: the lab directory and `state.json`, for commands from other terminals
//! - [`preflight`]: root, namespaces, prefix and binaries checks with one-sentence errors
//! - [`lab`]: a running lab (topology + aggregator + agents) and the commands on it
//! - [`demo`]: the interactive demo
//! - [`down`]: removing a lab or its leftovers by prefix
//! - [`restart`]: restarting one of a running lab's echomesh processes as it ran
#![forbid(unsafe_code)]

pub mod cmd;
pub mod demo;
pub mod down;
pub mod family;
pub mod fault;
pub mod lab;
pub mod naming;
pub mod plan;
pub mod preflight;
pub mod procs;
pub mod relay;
pub mod restart;
pub mod state;
pub mod topology;
