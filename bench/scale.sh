#!/usr/bin/env bash
# The 5,000-node simulation: 10,000 simulated agent sessions (pod + host network per node, zones
# of 500 nodes) against one real aggregator on this machine, on the budget pinglist, with scripted
# failures timed from the moment of each: a node vanishes, a zone partitions, 5 % of the nodes
# restart, a node joins while another leaves. Then the same script on the full mesh at the largest
# size it survives on a 2-core machine, and both runs' figures side by side with their goals.
#
#   bash bench/scale.sh           # 5,000 nodes budget + 500 nodes full mesh (about 10 minutes)
#   bash bench/scale.sh --quick   # 1,000 nodes budget + 200 nodes full mesh (about 4 minutes)
#
# The aggregator is the release binary, started by the load generator (echomesh-loadgen
# --mode scale, in the dev-only echomesh-testkit crate) as a child process with --pinglist, a
# short --coverage-period (so the coverage check ends within the run; the default 15m scales the
# same way: the cycle is the period whenever it is longer than the 5 s minimum epoch times the
# epochs the largest list needs), --max-agents and --max-connections raised for the sessions, and
# --agent-token-file (every session authenticates). Loopback TCP only; no ICMP.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for a in "$@"; do
    case "$a" in
        --quick) quick=1 ;;
        *) echo "bench/scale.sh: unknown option $a (the only option is --quick)" >&2; exit 2 ;;
    esac
done
if [ "$quick" = 1 ]; then
    nodes=1000 zone=100 period=2m mesh_nodes=200 mesh_zone=20
else
    nodes=5000 zone=500 period=5m mesh_nodes=500 mesh_zone=50
fi

cargo build --release --locked -p echomesh-aggregator --bin echomesh-aggregator \
    -p echomesh-testkit --bin echomesh-loadgen
bin="${CARGO_TARGET_DIR:-target}/release"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== budget pinglist, $nodes nodes ($((2 * nodes)) sessions), zones of $zone"
uptime
"$bin/echomesh-loadgen" --mode scale --pinglist budget --nodes "$nodes" --zone-size "$zone" \
    --coverage-period "$period" | tee "$out/budget"
echo
echo "== full mesh, $mesh_nodes nodes ($((2 * mesh_nodes)) sessions), zones of $mesh_zone"
uptime
"$bin/echomesh-loadgen" --mode scale --pinglist full-mesh --nodes "$mesh_nodes" \
    --zone-size "$mesh_zone" --coverage-period "$period" | tee "$out/mesh"
echo
echo "== side by side"
awk -F'|' -v a="budget, $nodes nodes" -v b="full mesh, $mesh_nodes nodes" '
    FNR == NR { if ($1 == "FIGURE") { mesh[$2] = $3 } ; next }
    $1 == "FIGURE" { order[++n] = $2; budget[$2] = $3; goal[$2] = $4 }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]
            printf "%s (goal %s)\n    %-26s %s\n    %-26s %s\n", k, goal[k], a ":", budget[k], b ":", (k in mesh ? mesh[k] : "-")
        }
    }' "$out/mesh" "$out/budget"
