#!/usr/bin/env bash
# Soak: a namespace lab under a loop of faults and restarts for a long time (default 30 minutes),
# watching whether memory stays flat and whether any report is lost.
#
# A lab of NODES nodes (two agents each) runs with the release binaries. Every FAULT_EVERY seconds
# the next step of a fault cycle hits the next node (cut, heal, loss 10 %, delay 2 ms, clear);
# every AGENT_RESTART_EVERY seconds one agent is restarted, and the aggregator is restarted twice,
# at 20 % and 40 % of the run (so the second half, where the slope is measured, sees one
# aggregator process living long). Restarts go through `echomesh-lab restart`, which stops the
# process by the PID the lab recorded and starts the same command line again; nothing is killed by
# name. Every SAMPLE_EVERY seconds, and just before each restart, the script reads each process's
# VmRSS from /proc/<pid>/status, the aggregator's `echomesh_reports_total{result="lost"}` and
# every agent's `echomesh_agent_reports_dropped_total` (counters are per process, so the totals
# add up the last value seen of every process that ever ran).
#
# At the end: RSS first / last / max per process kind, the RSS slope over the second half
# (KiB/min, fitted within each process so a restart does not count as a drop or a jump, samples
# of a process's first minute left out as warm-up), reports lost, the edges' states once every
# fault is cleared, and PASS/FAIL: slopes below AGG_SLOPE_MAX / AGENT_SLOPE_MAX KiB/min, no report
# lost or dropped, every restart done, every edge UP at the end.
#
# Everything runs in the lab's own network namespaces (unique prefix, removed on exit, also on
# failure or Ctrl-C); the root namespace is not touched. Results: bench/README.md, "Soak".
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN_DIR=${BIN_DIR:-$REPO_ROOT/target/release}
SOAK_DURATION=${SOAK_DURATION:-30m}
NODES=${NODES:-6}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
FAULT_EVERY=${FAULT_EVERY:-20}
AGENT_RESTART_EVERY=${AGENT_RESTART_EVERY:-120}
AGG_SLOPE_MAX=${AGG_SLOPE_MAX:-256}
AGENT_SLOPE_MAX=${AGENT_SLOPE_MAX:-64}
PREFIX="ems$(printf '%04x' $((RANDOM)))"
RUN_DIR=${ECHOMESH_LAB_RUN_DIR:-/run/echomesh-lab}
OUT=${SOAK_OUT:-$REPO_ROOT/bench/out/soak-$(date -u +%Y%m%dT%H%M%SZ)}
# The lab runs private copies of the binaries (made below), so a rebuild of target/release during
# the soak neither changes what a restart starts nor hides a process from the sampler.
BIN_COPY=""
LAB="$BIN_DIR/echomesh-lab"
CLI="$BIN_DIR/echomesh"
DEMO_PID=""

usage() {
  cat <<EOF
Usage: sudo [SOAK_DURATION=30m] [NODES=6] bench/soak.sh

Runs a $NODES-node lab for SOAK_DURATION ($SOAK_DURATION; 90s, 3m, 1h ...) under faults and restarts,
samples RSS and lost-report counters every $SAMPLE_EVERY s, prints a summary and PASS/FAIL.
Raw samples and logs: SOAK_OUT (default bench/out/soak-<UTC time>/). Needs root and the release
binaries in $BIN_DIR
(cargo build --release -p echomesh-agent -p echomesh-aggregator -p echomesh-cli -p echomesh-lab).
EOF
}
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) echo "soak.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
esac

to_seconds() { # 30m, 90s, 1h, 45 -> seconds
  case "$1" in
    *h) echo $(( ${1%h} * 3600 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo $(( ${1%s} )) ;;
    *) echo $(( $1 )) ;;
  esac
}
if ! [[ "$SOAK_DURATION" =~ ^[0-9]+[hms]?$ ]] || [ "$(to_seconds "$SOAK_DURATION")" -lt 60 ]; then
  echo "soak.sh: SOAK_DURATION must be a whole number of s, m or h, at least 60s (not $SOAK_DURATION)" >&2
  exit 2
fi
if ! [[ "$NODES" =~ ^[0-9]+$ ]] || [ "$NODES" -lt 2 ]; then
  echo "soak.sh: NODES must be at least 2 (not $NODES)" >&2; exit 2
fi
DURATION=$(to_seconds "$SOAK_DURATION")

cleanup() {
  # `down` stops the demo (which stops what it started and deletes the namespaces) and then the
  # aggregator PID in state.json, which is the restarted one when there was a restart.
  "$LAB" down --prefix "$PREFIX" >/dev/null 2>&1 || true
  if [ -n "$DEMO_PID" ] && kill -0 "$DEMO_PID" 2>/dev/null; then
    kill -INT "$DEMO_PID" 2>/dev/null || true
  fi
  [ -n "$DEMO_PID" ] && wait "$DEMO_PID" 2>/dev/null || true
  [ -n "$BIN_COPY" ] && rm -rf "$BIN_COPY"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "soak.sh: needs root (network namespaces)" >&2; exit 2; }
for b in "$LAB" "$CLI" "$BIN_DIR/echomesh-agent" "$BIN_DIR/echomesh-aggregator"; do
  [ -x "$b" ] || { echo "soak.sh: $b is missing; build the release binaries first" >&2; exit 2; }
done
for c in python3 curl ip; do
  command -v "$c" >/dev/null || { echo "soak.sh: needs $c" >&2; exit 2; }
done
"$LAB" restart --help >/dev/null 2>&1 || {
  echo "soak.sh: $LAB has no restart command; rebuild it" >&2; exit 2; }
BIN_COPY=$(mktemp -d /tmp/echomesh-soak-bin.XXXXXX)
cp "$BIN_DIR/echomesh-lab" "$BIN_DIR/echomesh" "$BIN_DIR/echomesh-agent" "$BIN_DIR/echomesh-aggregator" "$BIN_COPY/"
LAB="$BIN_COPY/echomesh-lab"
CLI="$BIN_COPY/echomesh"
mkdir -p "$OUT"
STATE="$RUN_DIR/$PREFIX/state.json"
{
  echo "command: SOAK_DURATION=$SOAK_DURATION NODES=$NODES SAMPLE_EVERY=$SAMPLE_EVERY FAULT_EVERY=$FAULT_EVERY AGENT_RESTART_EVERY=$AGENT_RESTART_EVERY bench/soak.sh"
  echo "commit: $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "kernel: $(uname -r), cpus: $(nproc)"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"

"$LAB" demo --nodes "$NODES" --prefix "$PREFIX" --refresh 0s >"$OUT/demo.log" 2>&1 &
DEMO_PID=$!
URL=""
for _ in $(seq 1 600); do
  URL=$("$LAB" list 2>/dev/null | awk -v p="$PREFIX" '$1 == p && $NF ~ /^http/ {print $NF}')
  [ -n "$URL" ] && break
  kill -0 "$DEMO_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$URL" ] || { echo "soak.sh: the lab did not start; its log:" >&2; cat "$OUT/demo.log" >&2; exit 1; }
echo "soak.sh: lab $PREFIX ($NODES nodes) up at $URL; running $SOAK_DURATION; output in $OUT"

NAMESPACES=()
for i in $(seq 1 "$NODES"); do NAMESPACES+=("$PREFIX-node$i-pod" "$PREFIX-node$i-host"); done

metric() { # metric NAME_WITH_LABELS: the value of that series from stdin (NA when absent)
  awk -v m="$1" 'index($0, m " ") == 1 {v = $2} END {print (v == "" ? "NA" : v)}'
}
rss_of() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo NA; }

# samples.tsv: unix time, kind, name, pid, VmRSS KiB, lost-report counter of that process.
sample() {
  local now agg http ns pid rss val exe
  now=$(date +%s.%N)
  read -r agg http < <(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["aggregator"]; print(a["pid"], a["http"])' "$STATE" 2>/dev/null || echo "NA NA")
  if [ "$agg" != NA ]; then
    rss=$(rss_of "$agg")
    val=$(curl -s -m 5 "http://$http/metrics" 2>/dev/null | metric 'echomesh_reports_total{result="lost"}' || echo NA)
    printf '%s\taggregator\taggregator\t%s\t%s\t%s\n' "$now" "$agg" "${rss:-NA}" "$val" >>"$OUT/samples.tsv"
  fi
  for ns in "${NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
      [ "$(basename "${exe% (deleted)}")" = echomesh-agent ] || continue
      rss=$(rss_of "$pid")
      val=$(ip netns exec "$ns" curl -s -m 5 http://127.0.0.1:7072/metrics 2>/dev/null \
        | metric echomesh_agent_reports_dropped_total || echo NA)
      printf '%s\tagent\t%s\t%s\t%s\t%s\n' "$now" "${ns#"$PREFIX"-}" "$pid" "${rss:-NA}" "$val" >>"$OUT/samples.tsv"
    done
  done
}

event() { printf '%s\t%s\n' "$(date +%s.%N)" "$*" >>"$OUT/events.tsv"; }
lab_cmd() { # run an echomesh-lab command, log it; a failure is recorded, not fatal
  local out
  if out=$("$LAB" "$@" --prefix "$PREFIX" 2>&1); then
    event "ok $* :: $out"
  else
    event "FAILED $* :: $out"
    echo "soak.sh: echomesh-lab $* failed: $out" >&2
  fi
}

START=$(date +%s)
END=$(( START + DURATION ))
AGG_RESTARTS=("$(( START + DURATION / 5 ))" "$(( START + DURATION * 2 / 5 ))")
next_sample=$START
next_fault=$(( START + FAULT_EVERY ))
next_agent=$(( START + AGENT_RESTART_EVERY / 2 ))
step=0
agent_i=0
FAULTS=(cut heal loss delay clear)
: >"$OUT/samples.tsv"
: >"$OUT/events.tsv"
event "start $PREFIX nodes=$NODES duration=${DURATION}s"
while :; do
  now=$(date +%s)
  [ "$now" -ge "$END" ] && break
  kill -0 "$DEMO_PID" 2>/dev/null || { event "FAILED the lab (demo) exited"; echo "soak.sh: the lab exited; its log:" >&2; tail -20 "$OUT/demo.log" >&2; break; }
  if [ "$now" -ge "$next_sample" ]; then
    sample
    next_sample=$(( next_sample + SAMPLE_EVERY ))
  fi
  if [ "$now" -ge "$next_fault" ]; then
    f=${FAULTS[$(( step % 5 ))]}
    node=node$(( (step / 5) % NODES + 1 ))
    case "$f" in
      loss) lab_cmd loss "$node" 10 ;;
      delay) lab_cmd delay "$node" 2ms ;;
      *) lab_cmd "$f" "$node" ;;
    esac
    step=$(( step + 1 ))
    next_fault=$(( next_fault + FAULT_EVERY ))
  fi
  if [ "$now" -ge "$next_agent" ]; then
    net=pod; [ $(( agent_i % 2 )) = 1 ] && net=host
    sample
    lab_cmd restart "node$(( (agent_i / 2) % NODES + 1 ))-$net"
    agent_i=$(( agent_i + 1 ))
    next_agent=$(( next_agent + AGENT_RESTART_EVERY ))
  fi
  if [ "${#AGG_RESTARTS[@]}" -gt 0 ] && [ "$now" -ge "${AGG_RESTARTS[0]}" ]; then
    sample
    lab_cmd restart aggregator
    AGG_RESTARTS=("${AGG_RESTARTS[@]:1}")
  fi
  sleep 1
done

# Clear every fault, let the mesh settle, then take the last sample and the edges' states.
# Settling takes up to a minute by design: a DEGRADED edge clears only after 3 / threshold clean
# probes (300 at the 1 % default, 30 s at 10 Hz) and the clear-after windows, so poll up to 90 s.
for i in $(seq 1 "$NODES"); do lab_cmd clear "node$i"; done
cleared=$SECONDS
while :; do
  sleep 5
  "$CLI" --aggregator "$URL" edges -o json --limit 10000 >"$OUT/edges.json" 2>"$OUT/edges.err" || true
  if python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["edges"]; sys.exit(0 if e and all(x["state"]=="up" for x in e) else 1)' "$OUT/edges.json" 2>/dev/null \
    || [ $((SECONDS - cleared)) -ge 90 ]; then
    break
  fi
done
echo $((SECONDS - cleared)) >"$OUT/settle_s"
sample
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

set +e
python3 - "$OUT" "$START" "$DURATION" "$AGG_SLOPE_MAX" "$AGENT_SLOPE_MAX" <<'EOF' | tee "$OUT/report.txt"
import collections, json, sys
out, start, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
bound = {"aggregator": float(sys.argv[4]), "agent": float(sys.argv[5])}
rows = []
for line in open(f"{out}/samples.tsv"):
    t, kind, name, pid, rss, val = line.rstrip("\n").split("\t")
    rows.append((float(t), kind, name, int(pid), None if rss == "NA" else int(rss),
                 None if val == "NA" else float(val)))
events = [l.rstrip("\n").split("\t", 1) for l in open(f"{out}/events.tsv")]
failed = [e for _, e in events if e.startswith("FAILED")]
restarts = [e for _, e in events if e.startswith("ok restart")]
print(open(f"{out}/machine.txt").read().rstrip())
print(f"samples: {len(rows)} over {duration / 60:.1f} min; fault steps: "
      f"{sum(1 for _, e in events if e.split()[1] in ('cut','heal','loss','delay','clear'))}; "
      f"restarts: {len(restarts)} ({sum('aggregator' in e for e in restarts)} of the aggregator); "
      f"failed lab commands: {len(failed)}")
for e in failed:
    print("  " + e)
verdict = not failed
half = start + duration / 2
print(f"{'kind':<11}{'procs':>6}{'RSS first':>11}{'last':>9}{'max':>9}   slope, 2nd half")
for kind in ("aggregator", "agent"):
    rs = [r for r in rows if r[1] == kind and r[4] is not None]
    if not rs:
        print(f"{kind:<11} no samples"); verdict = False; continue
    by_pid = collections.defaultdict(list)
    for r in rs:
        by_pid[r[3]].append(r)
    first_t, last_t = rs[0][0], rs[-1][0]
    first = sum(r[4] for r in rs if r[0] == first_t) / sum(1 for r in rs if r[0] == first_t)
    last = sum(r[4] for r in rs if r[0] == last_t) / sum(1 for r in rs if r[0] == last_t)
    mx = max(r[4] for r in rs)
    # Slope within each process (second half, after its first minute), pooled: sum of
    # (t - mean_t)(rss - mean_rss) / sum of (t - mean_t)^2 over every process's own means.
    sxy = sxx = 0.0
    n = 0
    for pid, ps in by_pid.items():
        born = ps[0][0]
        pts = [(r[0] / 60, r[4]) for r in ps if r[0] >= half and r[0] >= born + 60]
        if len(pts) < 3:
            continue
        mt = sum(p[0] for p in pts) / len(pts)
        mr = sum(p[1] for p in pts) / len(pts)
        sxy += sum((p[0] - mt) * (p[1] - mr) for p in pts)
        sxx += sum((p[0] - mt) ** 2 for p in pts)
        n += len(pts)
    if sxx > 0:
        slope = sxy / sxx
        ok = slope < bound[kind]
        verdict &= ok
        s = f"{slope:+.1f} KiB/min over {n} samples (bound {bound[kind]:.0f}: {'ok' if ok else 'TOO HIGH'})"
    else:
        s = "not enough samples in the second half"
        verdict = False
    each = "avg per process" if kind == "agent" else "per process"
    print(f"{kind:<11}{len(by_pid):>6}{first/1024:>9.1f}M{last/1024:>8.1f}M{mx/1024:>8.1f}M   {s} ({each})")
def total(kind):
    last = {}
    missing = 0
    for r in rows:
        if r[1] == kind:
            if r[5] is None:
                missing += 1
            else:
                last[r[3]] = r[5]
    return sum(last.values()), len(last), missing
lost, lp, lm = total("aggregator")
dropped, dp, dm = total("agent")
print(f"reports lost (aggregator echomesh_reports_total{{result=\"lost\"}}, summed over {lp} aggregator processes): {lost:.0f}"
      + (f" ({lm} samples without the metric)" if lm else ""))
print(f"reports dropped (agents echomesh_agent_reports_dropped_total, summed over {dp} agent processes): {dropped:.0f}"
      + (f" ({dm} samples without the metric)" if dm else ""))
verdict &= lost == 0 and dropped == 0 and lp > 0 and dp > 0
try:
    edges = json.load(open(f"{out}/edges.json"))["edges"]
    states = collections.Counter(e["state"] for e in edges)
    up = states.get("up", 0)
    settle = open(f"{out}/settle_s").read().strip()
    print(f"edges {settle} s after clearing every fault (at most 90): {len(edges)} ({', '.join(f'{k} {v}' for k, v in sorted(states.items()))})")
    verdict &= len(edges) > 0 and up == len(edges)
except Exception as e:
    print(f"edges at the end: unreadable ({e})")
    verdict = False
print("VERDICT:", "PASS" if verdict else "FAIL")
sys.exit(0 if verdict else 1)
EOF
status=${PIPESTATUS[0]}
exit "$status"
