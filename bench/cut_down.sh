#!/usr/bin/env bash
# Cut -> DOWN in the namespace lab: how long after `echomesh-lab cut` every edge crossing the cut
# node is DOWN, over repeated cuts (p50, p99, max), and how long after `heal` they are all UP.
#
# Times come from the aggregator's own state-change events (`echomesh watch -o json`, `at_unix_ms`)
# against the wall clock read just before each `echomesh-lab cut` starts, so the figure includes
# the cut command itself (a few ms) and never flatters. Everything runs in the lab's own network
# namespaces (created here, removed on exit, also on failure); the root namespace is not touched.
# Results: bench/README.md, "Cut to DOWN".
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_NAME=cut_down.sh
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
CUTS=${CUTS:-20}
NODES=${NODES:-3}
NODE=${NODE:-node$NODES}
PREFIX="emc$(printf '%04x' $((RANDOM)))"
WORK=$(mktemp -d)

usage() {
  cat <<EOF
Usage: sudo bench/cut_down.sh [--cuts N] [--nodes N]

Starts a lab of N nodes (default $NODES) with the aggregator and agents at their defaults (10 Hz,
1 s reports), cuts the last node's underlay link N times (default $CUTS), each time until every
edge crossing it is DOWN, heals it until every edge is UP again, and prints the cut -> DOWN and
heal -> UP times. Needs root and release binaries in $BIN_DIR
(cargo build --release -p echomesh-agent -p echomesh-aggregator -p echomesh-cli -p echomesh-lab).
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --cuts) CUTS=$2; shift 2 ;;
    --nodes) NODES=$2; NODE=node$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "cut_down.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

trap demo_cleanup EXIT
demo_preflight python3
demo_start "$NODES"

WANT=$(full_mesh_edges "$NODES")
wait_for_edges up "$WANT"
CROSSING=$(( 2 * 2 * (NODES - 1) * 2 ))   # the node's 2 agents <-> the others' 2(N-1), both ways

demo_watch "$WORK/events.jsonl"
sleep 1
: >"$WORK/cuts.txt"
for i in $(seq 1 "$CUTS"); do
  sleep "0.$(( RANDOM % 10 ))"   # spread the cut's phase over the 100 ms probe interval
  t_cut=$(date +%s%3N)
  "$LAB" cut --prefix "$PREFIX" "$NODE" >/dev/null
  t_cut_done=$(date +%s%3N)
  wait_for_edges down "$CROSSING" "$NODE"
  t_heal=$(date +%s%3N)
  "$LAB" heal --prefix "$PREFIX" "$NODE" >/dev/null
  wait_for_edges up "$WANT"
  echo "$t_cut $t_heal $t_cut_done" >>"$WORK/cuts.txt"
  sleep 2   # a healthy stretch before the next cut
done
sleep 1

python3 - "$WORK/cuts.txt" "$WORK/events.jsonl" "$NODE" "$CROSSING" <<'EOF'
import json, math, sys
cuts = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
events = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
node, crossing = sys.argv[3], int(sys.argv[4])
edges = [e for e in events if e.get("kind") == "edge_state"
         and (e["source_node"] == node) != (e["target_node"] == node)]
def key(e):
    return (e["source_node"], e["source_network"], e["target_address"])
down, up, cmd = [], [], []
for i, (t_cut, t_heal, t_cut_done) in enumerate(cuts):
    cmd.append(t_cut_done - t_cut)
    end = cuts[i + 1][0] if i + 1 < len(cuts) else math.inf
    first_down, first_up = {}, {}
    for e in edges:
        at = e["at_unix_ms"]
        if t_cut <= at < t_heal and e["to"] == "down":
            first_down.setdefault(key(e), at)
        if t_heal <= at < end and e["to"] == "up":
            first_up[key(e)] = at
    if len(first_down) == crossing:
        down.append(max(first_down.values()) - t_cut)
    if len(first_up) == crossing:
        up.append(max(first_up.values()) - t_heal)
def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, math.ceil(p * len(xs)) - 1)]
for name, xs in (("cut -> every crossing edge DOWN", down), ("heal -> every crossing edge UP", up),
                 ("the cut command itself (included above)", cmd)):
    if not xs:
        print(f"{name}: no complete sample"); continue
    print(f"{name}: n={len(xs)}/{len(cuts)} p50={q(xs, .5)} ms p99={q(xs, .99)} ms "
          f"max={max(xs)} ms min={min(xs)} ms")
EOF
