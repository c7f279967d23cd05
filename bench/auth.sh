#!/usr/bin/env bash
# What agent authentication and TLS cost. Loopback TCP only; no ICMP.
#
#   bash bench/auth.sh            # about 2 minutes
#
# 1. Ingest at 1000 agents x 999 targets as fast as acks allow, plaintext and then with TLS on the
#    gRPC port and a shared agent token on every session (echomesh-loadgen --secure), twice each,
#    alternating, so both see the same machine. Goal: secure >= 80 % of plaintext.
# 2. 1000 agents authenticated by TokenReview (a mocked API server answering after 20 ms) and
#    assigned, at start and again after an aggregator restart with an empty verdict cache
#    (echomesh-authbench). Goal: within 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p echomesh-aggregator --bin echomesh-aggregator \
    -p echomesh-testkit --bin echomesh-loadgen --bin echomesh-authbench
bin="${CARGO_TARGET_DIR:-target}/release"

for round in 1 2; do
  echo "== round $round: plaintext"
  uptime
  "$bin/echomesh-loadgen" --mode throughput --agents 1000 --duration 10s
  echo "== round $round: TLS + agent token"
  uptime
  "$bin/echomesh-loadgen" --mode throughput --agents 1000 --duration 10s --secure
done
echo
echo "== 1000 agents authenticated by TokenReview (20 ms each) and assigned, at start and after a restart"
uptime
"$bin/echomesh-authbench" --agents 1000 --review-latency 20ms
