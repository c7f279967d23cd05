#!/usr/bin/env bash
# The heatmap page's load time at 5,000 nodes in headless Chromium, beside the 2 s goal.
#
#   bash bench/page.sh            # release build of the test (the aggregator as deployed)
#   bash bench/page.sh --dev      # the dev profile (what the root CI stage builds; slower server)
#
# An in-process aggregator holds 5,000 pod-network nodes in 10 zones of 500, each probing
# ECHOMESH_PAGE_TARGETS peers (200: the default probe budget at 10 Hz; 1,000,000 edges), one node
# cut off and one lossy. The page is loaded ECHOMESH_PAGE_LOADS times (5), each in a fresh headless
# Chromium at 1280x900 without virtual time, so performance.now() is the wall clock: the figure is
# navigation start to the node summary table on screen (the page then zooms into a zone and back,
# which is checked, not timed). First it prints the server's time for each request of the first
# poll. Needs chromium (apt-get install chromium fonts-liberation, or ECHOMESH_CHROMIUM=/path).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=(--release)
for a in "$@"; do
    case "$a" in
        --dev) profile=() ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "page.sh: unknown option $a (expected --dev)" >&2; exit 2 ;;
    esac
done
if [[ -z "${ECHOMESH_CHROMIUM:-}" ]] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null \
    && ! command -v google-chrome >/dev/null && ! command -v google-chrome-stable >/dev/null; then
    echo "page.sh: no chromium on PATH (apt-get install chromium fonts-liberation, or set ECHOMESH_CHROMIUM)" >&2
    exit 2
fi
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(chromium --version 2>/dev/null || true)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cargo test -q "${profile[@]}" -p echomesh-aggregator --test browser browser_bench_page_load_at_5000_nodes \
    -- --ignored --nocapture --test-threads=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "page.sh: the benchmark failed" >&2
    exit 1
fi
grep -E '^(cluster|server|load [0-9]+|page load)' "$log"
