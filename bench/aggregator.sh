#!/usr/bin/env bash
# Aggregator benchmark: simulated agents over real gRPC, on this machine, then the memory of the
# edge store. The server is the real echomesh-aggregator binary, started by the load generator
# (echomesh-loadgen, in the dev-only echomesh-testkit crate) as a child process so its CPU and RSS
# are measured apart. Loopback TCP only; no ICMP.
#
#   bash bench/aggregator.sh            # all four runs (about two minutes), then a summary
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

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== goal 1: 1000 agents x 999 targets, as fast as acks allow (4 reports in flight per agent)"
uptime
"$bin/echomesh-loadgen" --mode throughput --agents 1000 --duration 10s | tee "$out/max"
echo
echo "== goal 1 with acks flowing: the same agents paced at 4.1 reports/s each (4.1M edge-updates/s offered, one report in flight)"
uptime
"$bin/echomesh-loadgen" --mode throughput --agents 1000 --duration 10s --rate 4.1 | tee "$out/paced"
echo
echo "== goals 2 and 4: fixed 1 report/s per agent (1M edge-updates/s), with GetEdge, Matrix and 8 WatchEvents subscribers"
uptime
"$bin/echomesh-loadgen" --mode fixed --agents 1000 --duration 20s | tee "$out/fixed"
echo
echo "== goal 3: memory per directed edge at 10M edges (2000 agents x 5000 targets), graph store in-process"
uptime
"$bin/echomesh-loadgen" --mode memory --mem-agents 2000 --mem-targets 5000 | tee "$out/memory"

# The figures beside their goals (numbers taken from the lines above).
num() { grep -m1 -F "$2" "$out/$1" | sed -E "s|.*$3.*|\1|"; }
echo
echo "== summary (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-58s %-22s %s\n' "figure" "goal" "measured"
printf '%-58s %-22s %s\n' "edge-updates/s, as fast as acks allow" ">= 4M/s" \
    "$(num max 'edge-updates/s' ' ([0-9.]+M) edge-updates/s')/s, server $(num max 'server CPU' 'server CPU ([0-9.]+) cores') cores"
printf '%-58s %-22s %s\n' "edge-updates/s paced at 4.1M/s offered: achieved" ">= 4M/s" \
    "$(num paced 'offered' ' ([0-9.]+M) edge-updates/s')/s, server $(num paced 'server CPU' 'server CPU ([0-9.]+) cores') cores"
printf '%-58s %-22s %s\n' "  its ack latency p99 (acks flowing)" "bounded, not seconds" \
    "$(num paced 'ack latency' 'p99 ([0-9.]+ ms)')"
printf '%-58s %-22s %s\n' "server CPU at a fixed 1M edge-updates/s" "<= 0.6 core" \
    "$(num fixed 'server CPU' 'server CPU ([0-9.]+) cores') cores"
printf '%-58s %-22s %s\n' "ack latency p99 at 1M/s" "<= 10 ms" "$(num fixed 'ack latency' 'p99 ([0-9.]+ ms)')"
printf '%-58s %-22s %s\n' "GetEdge p99 under that load" "< 1 ms" "$(num fixed 'GetEdge' 'p99 ([0-9.]+ ms)')"
printf '%-58s %-22s %s\n' "Matrix 1000x1000 under that load, median" "< 500 ms" "$(num fixed 'Matrix' 'median ([0-9]+ ms)')"
printf '%-58s %-22s %s\n' "memory per edge at 10M edges (after one report each)" "<= 200 B" \
    "$(num memory 'RSS growth' 'after assignment, ([0-9]+ B) per edge after one report')"
