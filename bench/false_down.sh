#!/usr/bin/env bash
# No false DOWN under random loss: a namespace lab with PCT % loss on one node's egress (every round
# trip crossing that node loses ~PCT % of its probes) for DURATION seconds, counting the edges'
# state changes from the aggregator's event stream. At 5 % the decision rule (6 probes unanswered
# in a row) predicts a false DOWN per edge per ten minutes with probability 8.9e-5
# (docs/aggregator.md, "DOWN within a second"). Everything runs in the lab's own namespaces,
# removed on exit. Results: bench/README.md, "Cut to DOWN".
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN_DIR=${BIN_DIR:-$REPO_ROOT/target/release}
NODES=${NODES:-3}
PCT=${PCT:-5}
DURATION=${DURATION:-600}
NODE=node$NODES
PREFIX="emf$(printf '%04x' $((RANDOM)))"
LAB="$BIN_DIR/echomesh-lab"
CLI="$BIN_DIR/echomesh"
WORK=$(mktemp -d)
DEMO_PID=""
WATCH_PID=""

cleanup() {
  [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null || true
  if [ -n "$DEMO_PID" ]; then
    kill -INT "$DEMO_PID" 2>/dev/null || true
    wait "$DEMO_PID" 2>/dev/null || true
  fi
  "$LAB" down --prefix "$PREFIX" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "false_down.sh: needs root (network namespaces)" >&2; exit 2; }
for b in "$LAB" "$CLI" "$BIN_DIR/echomesh-agent" "$BIN_DIR/echomesh-aggregator"; do
  [ -x "$b" ] || { echo "false_down.sh: $b is missing; build the binaries first" >&2; exit 2; }
done

"$LAB" demo --nodes "$NODES" --prefix "$PREFIX" --refresh 0s >"$WORK/demo.log" 2>&1 &
DEMO_PID=$!
URL=""
for _ in $(seq 1 300); do
  URL=$("$LAB" list 2>/dev/null | awk -v p="$PREFIX" '$1 == p && $NF ~ /^http/ {print $NF}')
  [ -n "$URL" ] && break
  sleep 0.1
done
[ -n "$URL" ] || { echo "false_down.sh: the lab did not start" >&2; cat "$WORK/demo.log" >&2; exit 1; }
sleep 5
"$CLI" --aggregator "$URL" watch --every-change -o json >"$WORK/events.jsonl" 2>/dev/null &
WATCH_PID=$!
sleep 1
"$LAB" loss --prefix "$PREFIX" "$NODE" "$PCT" >/dev/null
echo "false_down.sh: $PCT % loss on $NODE for $DURATION s" >&2
sleep "$DURATION"
"$CLI" --aggregator "$URL" edges -o json --limit 10000 >"$WORK/edges.json"
python3 - "$WORK/events.jsonl" "$WORK/edges.json" "$NODE" <<'PY'
import collections, json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
node = sys.argv[3]
edges = json.load(open(sys.argv[2]))["edges"]
cross = [e for e in edges if (e["source_node"] == node) != (e["target_node"] == node)]
sent = sum(e["sent_total"] for e in cross)
recv = sum(e["received_total"] for e in cross)
changes = collections.Counter((e["from"], e["to"]) for e in ev if e.get("kind") == "edge_state")
downs = sum(n for (f, t), n in changes.items() if t == "down")
print(f"edges crossing {node}: {len(cross)}, lifetime loss {100 * (sent - recv) / max(sent, 1):.2f} % "
      f"of {sent} probes; state changes: {dict(changes)}; false DOWN: {downs}")
PY
