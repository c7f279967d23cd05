#!/usr/bin/env bash
# No false DOWN under random loss: a namespace lab with PCT % loss on one node's egress (every round
# trip crossing that node loses ~PCT % of its probes) for DURATION seconds, counting the edges'
# state changes from the aggregator's event stream. At 5 % the decision rule (6 probes unanswered
# in a row) predicts a false DOWN per edge per ten minutes with probability 8.9e-5
# (docs/aggregator.md, "DOWN within a second"). Everything runs in the lab's own namespaces,
# removed on exit. Results: bench/README.md, "Cut to DOWN".
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_NAME=false_down.sh
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
NODES=${NODES:-3}
PCT=${PCT:-5}
DURATION=${DURATION:-600}
NODE=node$NODES
PREFIX="emf$(printf '%04x' $((RANDOM)))"
WORK=$(mktemp -d)

trap demo_cleanup EXIT
demo_preflight python3
demo_start "$NODES"
sleep 5
demo_watch "$WORK/events.jsonl"
sleep 1
"$LAB" loss --prefix "$PREFIX" "$NODE" "$PCT" >/dev/null
echo "false_down.sh: $PCT % loss on $NODE for $DURATION s" >&2
sleep "$DURATION"
demo_edges >"$WORK/edges.json"
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
