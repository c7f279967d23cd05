#!/usr/bin/env bash
# Accuracy against injected truth, in the namespace lab: random loss each way and a delay on one
# node's uplink, measured in the same minute three ways on the same path — the `run` agents'
# counters and windows in the aggregator, `echomesh-agent probe`, and fping — printed side by side
# with the truth, then `clear` and the one-minute window read again one window later.
#
# Loss "each way": the lab's loss fault drops p % of what leaves the node's eth0 (postrouting);
# this script adds the matching ingress chain (prerouting, iifname eth0) to the same nftables table
# in the node's host namespace, so every round trip crossing the uplink is hit twice and the truth
# is 1-(1-p)^2. `echomesh-lab clear` deletes the whole table, ingress chain included. The delay
# fault (+D per round trip) runs at the same time, so fping's median and the aggregator's p50 are
# compared on an RTT that is not just the loopback floor.
#
# Everything runs in the lab's own namespaces (created here, removed on exit, also on failure);
# the root namespace is not touched. Results: bench/README.md, "Accuracy against injected truth".
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_NAME=accuracy.sh
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
NODES=${NODES:-4}
NODE=${NODE:-node$NODES}
PEER=${PEER:-node1}
LOSS=${LOSS:-10}          # percent, each way
DELAY=${DELAY:-3ms}
WINDOW=${WINDOW:-60}      # seconds: the one-minute window
RATE_MS=${RATE_MS:-10}    # probe and fping interval on the measured path (100 Hz)
PREFIX="ema$(printf '%04x' $((RANDOM)))"
WORK=$(mktemp -d)

usage() {
  cat <<EOF
Usage: sudo bench/accuracy.sh [--loss PCT] [--delay D] [--nodes N]

Starts a lab of N nodes (default $NODES), injects PCT % loss each way (default $LOSS) and DELAY
(default $DELAY) on the last node's uplink, and for one window ($WINDOW s) measures the edges crossing
it with the aggregator, \`echomesh-agent probe\` and fping (both from the node's pod to $PEER's pod,
every $RATE_MS ms). Then clears the faults and reads loss_1m again one window later.
Needs root, fping, python3 and the binaries in BIN_DIR (default $BIN_DIR):
cargo build --release -p echomesh-agent -p echomesh-aggregator -p echomesh-cli -p echomesh-lab
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --loss) LOSS=$2; shift 2 ;;
    --delay) DELAY=$2; shift 2 ;;
    --nodes) NODES=$2; NODE=node$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "accuracy.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$LOSS" in ''|*[!0-9]*) echo "accuracy.sh: --loss wants a whole percentage 1-99, not '$LOSS'" >&2; exit 2 ;; esac
[ "$LOSS" -ge 1 ] && [ "$LOSS" -le 99 ] || { echo "accuracy.sh: --loss wants 1-99, not $LOSS" >&2; exit 2; }
[[ "$DELAY" =~ ^[0-9]+(\.[0-9]+)?(us|ms|s)$ ]] || { echo "accuracy.sh: --delay wants a duration like 3ms or 1.5ms, not '$DELAY'" >&2; exit 2; }
[ "$NODES" -ge 2 ] 2>/dev/null || { echo "accuracy.sh: --nodes wants at least 2" >&2; exit 2; }

trap demo_cleanup EXIT
demo_preflight fping python3 nft
demo_start "$NODES"
wait_for_edges up "$(full_mesh_edges "$NODES")"
# Let the first reports land before the faults start.
sleep 2

N="${NODE#node}"; P="${PEER#node}"
HOST_NS="$PREFIX-node$N-host"
POD_NS="$PREFIX-node$N-pod"
TARGET="10.244.$P.2"
"$LAB" loss --prefix "$PREFIX" "$NODE" "$LOSS" >/dev/null
ip netns exec "$HOST_NS" nft add chain inet echomesh_lab ingress \
  '{ type filter hook prerouting priority 0; policy accept; }'
ip netns exec "$HOST_NS" nft add rule inet echomesh_lab ingress \
  iifname '"eth0"' numgen random mod 100 '<' "$LOSS" counter drop
"$LAB" delay --prefix "$PREFIX" "$NODE" "$DELAY" >/dev/null
t_fault=$(date +%s.%N)
demo_edges >"$WORK/before.json"

COUNT=$(( WINDOW * 1000 / RATE_MS ))
ip netns exec "$POD_NS" "$AGENT" probe -c "$COUNT" -i "${RATE_MS}ms" -o json "$TARGET" \
  >"$WORK/probe.json" 2>"$WORK/probe.err" &
PROBE_PID=$!
ip netns exec "$POD_NS" fping -C "$COUNT" -p "$RATE_MS" -q "$TARGET" >"$WORK/fping.out" 2>&1 &
FPING_PID=$!
wait "$PROBE_PID" || true   # probe exits non-zero when a probe is lost
wait "$FPING_PID" || true   # fping exits 1 when any probe is lost
# One window after the change, plus two report intervals for the last reports to land.
python3 -c "import time; time.sleep(max(0, $t_fault + $WINDOW + 2 - time.time()))"
demo_edges >"$WORK/after.json"
read -r LOAD1 LOAD5 LOAD15 _ </proc/loadavg

"$LAB" clear --prefix "$PREFIX" "$NODE" >/dev/null
t_clear=$(date +%s.%N)
python3 -c "import time; time.sleep(max(0, $t_clear + $WINDOW + 2 - time.time()))"
demo_edges >"$WORK/cleared.json"

python3 - "$WORK" "$NODE" "$PEER" "$LOSS" "$DELAY" "$WINDOW" "$RATE_MS" <<'EOF'
import json, math, statistics, sys
work, node, peer, p, delay, window, rate = sys.argv[1:8]
p = int(p) / 100
truth = 100 * (1 - (1 - p) ** 2)
load = lambda f: json.load(open(f"{work}/{f}"))["edges"]
def key(e):
    return (e["source_node"], e["source_network"], e["target_node"], e["target_network"], e["target_address"])
crosses = lambda e: (e["source_node"] == node) != (e["target_node"] == node)
before = {key(e): e for e in load("before.json")}
after = [e for e in load("after.json") if crosses(e) and key(e) in before]
sent = sum(e["sent_total"] - before[key(e)]["sent_total"] for e in after)
recv = sum(e["received_total"] - before[key(e)]["received_total"] for e in after)
counters = 100 * (sent - recv) / sent
sd = 100 * math.sqrt(p * (2 - p) * (1 - p) ** 2 / sent)  # binomial sd of the pooled estimate
l1m = [e["loss_1m_pct"] for e in after]
probe = json.load(open(f"{work}/probe.json"))[0]
fl = [l for l in open(f"{work}/fping.out") if " : " in l][-1].split(" : ", 1)[1].split()
f_rtts = [float(x) for x in fl if x != "-"]
f_loss = 100 * (len(fl) - len(f_rtts)) / len(fl)
f_p50 = statistics.median(f_rtts)
path = [e for e in after if e["source_node"] == node and e["source_network"] == "pod"
        and e["target_node"] == peer and e["target_network"] == "pod"]
agg_p50 = path[0]["p50_us"] / 1000 if path else float("nan")
cleared = [e["loss_1m_pct"] for e in load("cleared.json") if crosses(e)]
print(f"{len(after)} edges cross {node}'s uplink; {p*100:.0f} % loss each way and +{delay} on it for {window} s")
print(f"{'source':46} {'probes':>8} {'loss %':>8}")
print(f"{'injected truth 1-(1-p)^2':46} {'':>8} {truth:8.2f}")
print(f"{'aggregator counters (crossing edges, pooled)':46} {sent:8d} {counters:8.2f}   ({recv}/{sent} received; binomial sd {sd:.2f})")
print(f"{'aggregator loss_1m_pct, one window after':46} {'':>8} {statistics.mean(l1m):8.2f}   (min {min(l1m):.2f}, max {max(l1m):.2f})")
print(f"{'echomesh-agent probe (pod -> ' + peer + ' pod)':46} {probe['sent']:8d} {probe['loss_pct']:8.2f}")
print(f"{'fping -C (same path, same minute)':46} {len(fl):8d} {f_loss:8.2f}")
print(f"p50: aggregator {agg_p50:.3f} ms, fping median {f_p50:.3f} ms, probe {probe['rtt_us']['p50']/1000:.3f} ms; "
      f"aggregator vs fping {100*(agg_p50-f_p50)/f_p50:+.2f} % "
      f"(goal within 2 %: {'met' if abs(agg_p50-f_p50) <= 0.02*f_p50 else 'NOT met'})")
print(f"after clear, one window later: loss_1m_pct on the crossing edges max {max(cleared):.2f} "
      f"(all {len(cleared)} at 0: {'yes' if max(cleared) == 0 else 'NO'})")
EOF
echo "load average at the end of the impaired window: $LOAD1 $LOAD5 $LOAD15"
