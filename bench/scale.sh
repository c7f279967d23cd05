#!/usr/bin/env bash
# The 5,000-node simulation: 10,000 simulated agent sessions (pod + host network per node, zones
# of 500 nodes) against one real aggregator on this machine, on the budget pinglist, with scripted
# failures timed from the moment of each: a node vanishes, a zone partitions, 5 % of the nodes
# restart, a node joins while another leaves. Then the same script on the full mesh at the largest
# size it survives on a 2-core machine, and both runs' figures side by side with their goals.
#
#   bash bench/scale.sh           # about 10 minutes: 5,000 nodes on the budget pinglist with the
#                                 # default --coverage-period (15m); 1,000 nodes with a 2m period,
#                                 # waited out to count coverage; full mesh at 500 nodes
#   bash bench/scale.sh --quick   # about 4 minutes: the 1,000-node coverage run and full mesh at 200
#
# The aggregator is the release binary, started by the load generator (echomesh-loadgen
# --mode scale, in the dev-only echomesh-testkit crate) as a child process with --pinglist,
# --coverage-period, --max-agents and --max-connections raised for the sessions, and
# --agent-token-file (every session authenticates with the shared token). Loopback TCP only; no
# ICMP. Coverage scales like this: the cycle is --coverage-period, but at least the 5 s minimum
# epoch times the epochs the largest list needs (full list / rotating slots: 55 at 5,000 nodes,
# so 275 s; 11 at 1,000 nodes, so 55 s), which is why the 5,000-node run keeps the default 15 min
# (waiting it out would take the whole budget of the run) and coverage is counted at 1,000 nodes.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for a in "$@"; do
    case "$a" in
        --quick) quick=1 ;;
        *) echo "bench/scale.sh: unknown option $a (the only option is --quick)" >&2; exit 2 ;;
    esac
done
cargo build --release --locked -p echomesh-aggregator --bin echomesh-aggregator \
    -p echomesh-testkit --bin echomesh-loadgen
bin="${CARGO_TARGET_DIR:-target}/release"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# run NAME LABEL ARGS...: one simulation, its output kept for the table.
labels=()
names=()
run() {
    local name=$1 label=$2
    shift 2
    echo "== $label"
    uptime
    "$bin/echomesh-loadgen" --mode scale "$@" | tee "$out/$name"
    echo
    names+=("$out/$name")
    labels+=("$label")
}

if [ "$quick" = 0 ]; then
    run big "budget, 5000 nodes (10000 sessions), zones of 500, --coverage-period 15m" \
        --pinglist budget --nodes 5000 --zone-size 500 --coverage-period 15m --no-coverage
fi
run cov "budget, 1000 nodes (2000 sessions), zones of 100, --coverage-period 2m" \
    --pinglist budget --nodes 1000 --zone-size 100 --coverage-period 2m
if [ "$quick" = 0 ]; then
    run mesh "full mesh, 500 nodes (1000 sessions), zones of 50" \
        --pinglist full-mesh --nodes 500 --zone-size 50 --no-coverage
else
    run mesh "full mesh, 200 nodes (400 sessions), zones of 20" \
        --pinglist full-mesh --nodes 200 --zone-size 20 --no-coverage
fi

echo "== side by side"
for i in "${!labels[@]}"; do echo "  [$((i + 1))] ${labels[$i]}"; done
awk -F'|' '
    FNR == 1 { files++ }
    $1 != "FIGURE" { next }
    { if (!($2 in goal)) { order[++n] = $2; goal[$2] = $4 } ; val[$2, files] = $3 }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]
            printf "%s (goal %s)\n", k, goal[k]
            for (f = 1; f <= files; f++) printf "    [%d] %s\n", f, ((k, f) in val ? val[k, f] : "-")
        }
    }' "${names[@]}"
