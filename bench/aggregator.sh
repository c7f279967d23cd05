#!/usr/bin/env bash
# Aggregator benchmark: simulated agents over real gRPC, on this machine, then the memory of the
# edge store. The server is the real echomesh-aggregator binary, started by the load generator
# (echomesh-loadgen, in the dev-only echomesh-testkit crate) as a child process so its CPU and RSS
# are measured apart. Loopback TCP only; no ICMP.
#
#   bash bench/aggregator.sh            # all three runs (about a minute)
#
# The goals were set against a reference (a minimal tonic server with a 296-byte record) on the
# same kind of 2-core machine; compare the server CPU column, not only the rate, when other work
# shares the cores (the script prints the load average before each run).
set -euo pipefail
cd "$(dirname "$0")/.."
# Both binaries land in the same directory: the load generator starts the aggregator next to it.
cargo build --release --locked -p echomesh-aggregator --bin echomesh-aggregator \
    -p echomesh-testkit --bin echomesh-loadgen
bin="${CARGO_TARGET_DIR:-target}/release"

echo "== goal 1: 1000 agents x 999 targets, as fast as acks allow (4 reports in flight per agent)"
uptime
"$bin/echomesh-loadgen" --mode throughput --agents 1000 --duration 10s
echo
echo "== goals 2 and 4: fixed 1 report/s per agent (1M edge-updates/s), with GetEdge, Matrix and 8 WatchEvents subscribers"
uptime
"$bin/echomesh-loadgen" --mode fixed --agents 1000 --duration 20s
echo
echo "== goal 3: memory per directed edge at 10M edges (2000 agents x 5000 targets), graph store in-process"
uptime
"$bin/echomesh-loadgen" --mode memory --mem-agents 2000 --mem-targets 5000
