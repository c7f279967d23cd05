#!/usr/bin/env bash
# What each read view costs the aggregator server side at cluster size: Summary (status), ListNodes,
# the worst ten edges (top), the failing edges (check), GetEdge, NodeSummary, ZoneMatrix, one
# zone's Matrix and the diagnosis (computed, and shared within a second), on a graph of
# NODES nodes (pod + host agents, TARGETS peers each) filled in process. Prints median and worst
# milliseconds over RUNS, each beside its goal where the issue sets one.
#
#   bash bench/views.sh [NODES] [TARGETS] [RUNS]      # defaults 5000 200 5 (2,000,000 edges)
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-5000}
targets=${2:-200}
runs=${3:-5}
for v in "$nodes" "$targets" "$runs"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "views.sh: NODES, TARGETS and RUNS must be positive whole numbers, got '$v'" >&2; exit 2; }
done
cargo build --release -q -p echomesh-aggregator --example views_cost
echo "load: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc)"
target/release/examples/views_cost "$nodes" "$targets" "$runs"
