#!/usr/bin/env bash
# One agent's cost at the default probe budget, on a real raw socket, in a private namespace lab.
#
# The default pinglist policy gives every agent at most 2,000 probes/s: 200 targets at 10 Hz (the
# budget policy's defaults, aggregator/src/policy/budget.rs). This runs `echomesh-agent probe` at
# exactly that load for 60 s and prints its CPU (cores) and peak RSS beside the goals
# (<= 0.1 core, <= 64 MiB).
#
# The lab is the sink lab of bench/lib.sh, the one of bench/probe_vs_fping.sh: a sender namespace
# and a sink namespace joined by a veth pair, the sink answering every address of 10.250.0.0/16.
# Over veth the sink's kernel answers inside the sender's own send call, so the agent would be
# billed a peer's work; the run is therefore made twice:
#   own   the agent pinned to CPU 0, the sink's receive steered to CPU 1 with RPS (as a real peer
#         answers on another machine): the agent's own cost, judged against the goal;
#   billed the sink on whatever CPU sends (the agent is also billed every peer's answer): an upper
#         bound, shown beside it.
# Nothing in the root namespace is touched; every packet stays inside the two namespaces.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_NAME=agent_budget
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
ECHOMESH_AGENT=${ECHOMESH_AGENT:-$REPO_ROOT/target/release/echomesh-agent}

TARGETS=200
INTERVAL_MS=100
DURATION_S=60
MODES="own,billed"
OUT_DIR=""
GOAL_CORES=0.1
GOAL_RSS_MIB=64

sink_lab_names "emab$$"

usage() {
  cat <<EOF
Usage: sudo bench/agent_budget.sh [--duration SECONDS] [--modes own,billed] [--out DIR]

Runs 'echomesh-agent probe' over $TARGETS targets at 10 Hz (2,000 probes/s, the default probe
budget) for --duration seconds (default $DURATION_S) in a private two-namespace lab and prints
its CPU in cores and its peak RSS beside the goals (<= $GOAL_CORES core, <= $GOAL_RSS_MIB MiB).

  --duration S   seconds of probing per run (default $DURATION_S; at least 5)
  --modes LIST   own (agent on CPU 0, the sink's kernel on CPU 1: judged), billed (the sink's
                 answers billed to the agent: an upper bound), comma separated (default $MODES)
  --out DIR      where raw outputs go (default bench/out/budget-<UTC timestamp>)
  -h, --help     this text

Environment: ECHOMESH_AGENT (default <repo>/target/release/echomesh-agent).
Needs root (namespaces, raw sockets), ip, taskset, python3, GNU time and, for 'own', 2 CPUs:
  apt-get install iproute2 util-linux time python3
EOF
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --duration) [ $# -ge 2 ] || die "--duration needs a number of seconds"; DURATION_S=$2; shift 2 ;;
      --duration=*) DURATION_S=${1#--duration=}; shift ;;
      --modes) [ $# -ge 2 ] || die "--modes needs a list, e.g. --modes own"; MODES=$2; shift 2 ;;
      --modes=*) MODES=${1#--modes=}; shift ;;
      --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT_DIR=$2; shift 2 ;;
      --out=*) OUT_DIR=${1#--out=}; shift ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
  done
  [[ "$DURATION_S" =~ ^[0-9]+$ ]] && [ "$DURATION_S" -ge 5 ] \
    || die "--duration takes whole seconds, at least 5 (got '$DURATION_S')"
  [[ "$MODES" =~ ^(own|billed)(,(own|billed))?$ ]] || die "--modes takes own and/or billed, e.g. --modes own (got '$MODES')"
}

want() {
  [[ ",$MODES," == *",$1,"* ]]
}

preflight() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (creates network namespaces, opens raw sockets): sudo $0"
  local missing=()
  command -v ip >/dev/null || missing+=("ip (iproute2)")
  command -v taskset >/dev/null || missing+=("taskset (util-linux)")
  command -v python3 >/dev/null || missing+=("python3")
  [ -x /usr/bin/time ] || missing+=("/usr/bin/time (GNU time)")
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}. Install with: apt-get install iproute2 util-linux time python3"
  require_gnu_time
  if want own && [ "$(nproc)" -lt 2 ]; then
    die "mode 'own' needs 2 CPUs (the agent on one, the sink on the other); use --modes billed"
  fi
  require_probe_agent
}

# run_mode MODE: one run of the agent under GNU time; writes MODE.{cmd,time,stdout,stderr,load}.
run_mode() {
  local mode=$1 prefix="$OUT_DIR/$1" count=$((DURATION_S * 1000 / INTERVAL_MS)) pin=()
  if [ "$mode" = own ]; then sink_rps 2; pin=(taskset -c 0); else sink_rps 0; fi
  local cmd=("${pin[@]}" "$ECHOMESH_AGENT" probe -c "$count" -i "${INTERVAL_MS}ms" -t 1s -o json -f "$OUT_DIR/targets")
  printf '%q ' "${cmd[@]}" >"$prefix.cmd"
  cut -d' ' -f1-3 /proc/loadavg >"$prefix.load"
  log "$mode: $TARGETS targets x $((1000 / INTERVAL_MS)) Hz for ${DURATION_S} s: ${cmd[*]}"
  local rc=0 pid
  ip netns exec "$NS_SND" /usr/bin/time -o "$prefix.time" -f '%e %U %S %M' "${cmd[@]}" \
    >"$prefix.stdout" 2>"$prefix.stderr" &
  pid=$!
  STARTED_PIDS+=("$pid")
  wait "$pid" || rc=$?
  STARTED_PIDS=()
  echo "$rc" >"$prefix.rc"
  [ "$rc" -le 1 ] || die "the agent exited $rc in mode $mode: $(tail -3 "$prefix.stderr")"
  sink_rps 0
}

report() {
  python3 - "$OUT_DIR" "$MODES" "$GOAL_CORES" "$GOAL_RSS_MIB" <<'EOF'
import os, re, sys
out, modes, goal_cores, goal_mib = sys.argv[1], sys.argv[2].split(","), float(sys.argv[3]), float(sys.argv[4])
print()
print("Per agent at the default budget: 200 targets x 10 Hz = 2,000 probes/s ('echomesh-agent probe')")
rows = []
for mode in modes:
    p = os.path.join(out, mode)
    wall, user, sys_s, rss_kb = open(p + ".time").read().split()[-4:]
    wall, cpu, rss_mib = float(wall), float(user) + float(sys_s), int(rss_kb) / 1024
    f = dict(re.findall(r"\b(\w+)=([\d.]+)\b", open(p + ".stderr").read()))
    sent, received = int(f.get("sent", 0)), int(f.get("received", 0))
    rows.append((mode, wall, float(user), float(sys_s), cpu / wall, rss_mib, sent, received,
                 sent / wall, cpu * 1e6 / received if received else None,
                 f.get("rtt_p50_us", "-"), f.get("rtt_p99_us", "-"), open(p + ".load").read().strip(),
                 open(p + ".cmd").read().strip()))
print(f"  {'mode':7} {'wall s':>7} {'user s':>7} {'sys s':>7} {'cores':>7} {'peak RSS':>10} {'sent':>8} "
      f"{'received':>9} {'probes/s':>9} {'us/answered':>11} {'RTT p50/p99 us':>15}  load at start")
for r in rows:
    per = f"{r[9]:.2f}" if r[9] is not None else "-"
    print(f"  {r[0]:7} {r[1]:7.2f} {r[2]:7.2f} {r[3]:7.2f} {r[4]:7.4f} {r[5]:7.1f} MiB {r[6]:8,} {r[7]:9,} "
          f"{r[8]:9,.0f} {per:>11} {r[10] + ' / ' + r[11]:>15}  {r[12]}")
for r in rows:
    print(f"  cmd {r[0]}: {r[13]}")
print()
for r in rows:
    judged = " (judged)" if r[0] == "own" or "own" not in modes else " (upper bound: every peer's answer billed to the agent)"
    for name, value, goal, unit in (("CPU", r[4], goal_cores, "core"), ("peak RSS", r[5], goal_mib, "MiB")):
        state = "PASS" if value <= goal else "FAIL"
        fmtv = f"{value:.4f}" if unit == "core" else f"{value:.1f}"
        print(f"  [{state}] {r[0]}{judged}: {name} {fmtv} {unit} (goal <= {goal:g} {unit})")
EOF
}

main() {
  parse_args "$@"
  preflight
  OUT_DIR=${OUT_DIR:-$BENCH_DIR/out/budget-$(date -u +%Y%m%dT%H%M%SZ)}
  mkdir -p "$OUT_DIR"
  trap sink_lab_cleanup EXIT
  trap 'on_signal INT' INT
  trap 'on_signal TERM' TERM
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel: $(uname -r)"
    echo "cpus: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "echomesh-agent: $ECHOMESH_AGENT"
  } | tee "$OUT_DIR/machine.txt"
  sink_lab_up
  write_targets "$TARGETS" "$OUT_DIR/targets"
  local m
  for m in own billed; do
    if want "$m"; then run_mode "$m"; fi
  done
  log "raw outputs in $OUT_DIR"
  report | tee "$OUT_DIR/report.txt"
}

main "$@"
