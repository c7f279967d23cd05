#!/usr/bin/env bash
# echomesh-agent probe vs fping, on the same targets, in the same run, in a private namespace lab.
#
# The lab: a sender namespace and a sink namespace joined by a veth pair. The sink owns the whole
# 10.250.0.0/16 through a local route on lo, so its kernel answers echo requests for 65,536
# addresses; the sender routes that /16 via the sink. Both tools run inside the sender namespace.
# Nothing in the root namespace (interfaces, routes, firewall, sysctls) is touched, and every packet
# stays inside the two namespaces. See bench/README.md for the scenarios and how to read the output.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_NAME=probe_vs_fping
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
STATS="$BENCH_DIR/bench_stats.py"

ECHOMESH_AGENT=${ECHOMESH_AGENT:-$REPO_ROOT/target/release/echomesh-agent}
FPING=${FPING:-fping}
# fping's -i (gap between any two packets) for the "paced" run of scenario 2. fping sleeps between
# packets whenever -i > 0 and its real gap is ~0.1 ms longer than asked, so -i 0.166 (= 166 ms /
# 1000 targets) only reaches ~3,900/s; 0.05 reaches the ~6,000/s the scenario asks for.
FPING_PACED_GAP_MS=${FPING_PACED_GAP_MS:-0.05}
# fping keeps one 16-bit sequence space for all targets and will not reuse a number for 10 s, so
# targets x rate x (10 s + period) must stay under 65,535: 640 targets x 10 Hz is the largest round
# figure that survives (650 aborts at 10 s).
FPING_SUSTAINED_TARGETS=${FPING_SUSTAINED_TARGETS:-640}
# Opt-in scheduling priority for both tools (e.g. -5) on a host busy with other work. Off by
# default: on a shared machine a 100k probes/s run at high priority starves everyone else.
BENCH_NICE=${BENCH_NICE:-}

sink_lab_names "emb$$"

ONLY="1,2,3,4,5"
QUICK=0
FPING_ONLY=0
OUT_DIR=""

usage() {
  cat <<EOF
Usage: sudo bench/probe_vs_fping.sh [--only LIST] [--quick] [--fping-only] [--out DIR]

Builds a private two-namespace lab answering $SUBNET, runs fping and 'echomesh-agent probe'
on the same targets, and prints both tools' figures side by side with echomesh/fping ratios.

  --only LIST    scenarios to run, comma separated (default 1,2,3,4,5)
                   1 sustained throughput (echomesh 65,536 targets ~100k probes/s 30 s;
                     fping at its sustainable ceiling, plus a 65,534-probe burst)
                   2 CPU cost at ~6,000 probes/s, 1000 targets, 15 s
                   3 footprint: 1000 targets x 10 Hz for 30 s (fping is expected to abort)
                   4 RTT accuracy: 100 targets x 20 Hz for 10 s
                   5 scenario 2 with the sink's kernel off the tools' CPU (tools pinned to
                     CPU 0, the sink's receive steered to CPU 1 with RPS): each tool's own cost
  --quick        short durations (2-5 s per run) for smoke testing; verdicts are indicative only
  --fping-only   skip echomesh (no binary needed)
  --out DIR      where raw outputs go (default bench/out/<UTC timestamp>)
  -h, --help     this text

Environment:
  ECHOMESH_AGENT           echomesh-agent binary (default: <repo>/target/release/echomesh-agent)
  FPING                    fping binary (default: fping from PATH)
  FPING_PACED_GAP_MS       fping -i for the paced scenario-2 run (default $FPING_PACED_GAP_MS)
  FPING_SUSTAINED_TARGETS  targets for fping's 10 Hz sustained run (default $FPING_SUSTAINED_TARGETS)
  BENCH_NICE               run both tools under 'nice -n BENCH_NICE' (default: unchanged priority)

Needs root (network namespaces, raw sockets), ip, fping, python3 and GNU time (scenario 5 also
taskset and 2 CPUs):
  apt-get install fping iproute2 time python3 util-linux
EOF
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --only) [ $# -ge 2 ] || die "--only needs a list, e.g. --only 2,4"; ONLY=$2; shift 2 ;;
      --only=*) ONLY=${1#--only=}; shift ;;
      --quick) QUICK=1; shift ;;
      --fping-only) FPING_ONLY=1; shift ;;
      --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT_DIR=$2; shift 2 ;;
      --out=*) OUT_DIR=${1#--out=}; shift ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
  done
  [[ "$ONLY" =~ ^[1-5](,[1-5])*$ ]] || die "--only takes scenario numbers 1-5, e.g. --only 2,4 (got '$ONLY')"
  [[ -z "$BENCH_NICE" || "$BENCH_NICE" =~ ^-?[0-9]+$ ]] || die "BENCH_NICE must be an integer (got '$BENCH_NICE')"
}

want() {
  [[ ",$ONLY," == *",$1,"* ]]
}

preflight() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (creates network namespaces, opens raw sockets): sudo $0 $*"
  local missing=()
  command -v ip >/dev/null || missing+=("ip (iproute2)")
  command -v "$FPING" >/dev/null || missing+=("fping")
  [ -x /usr/bin/time ] || missing+=("/usr/bin/time (GNU time)")
  command -v python3 >/dev/null || missing+=("python3")
  if want 5; then
    command -v taskset >/dev/null || missing+=("taskset (util-linux)")
    [ "$(nproc)" -ge 2 ] || die "scenario 5 needs 2 CPUs (the tool on one, the sink on the other); run --only 1,2,3,4 here"
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    die "missing: ${missing[*]}. Install with: apt-get install fping iproute2 time python3 util-linux"
  fi
  require_gnu_time
  if [ "$FPING_ONLY" -eq 0 ]; then
    require_probe_agent "or run without:   $0 --fping-only"
    ECHOMESH_AGENT=$(cd "$(dirname "$ECHOMESH_AGENT")" && pwd)/$(basename "$ECHOMESH_AGENT")
  fi
}

# --- lab --------------------------------------------------------------------------------------

# The sink lab (bench/lib.sh), checked with fping before anything is measured.
lab_up() {
  sink_lab_up

  # Prove the sink answers across the whole /16, edges included, before measuring anything.
  ip netns exec "$NS_SND" "$FPING" -q -c 1 -t 500 10.250.0.0 10.250.0.1 10.250.128.77 10.250.255.255 \
    >"$OUT_DIR/labcheck.txt" 2>&1 || die "lab check failed: the sink does not answer $SUBNET: $(cat "$OUT_DIR/labcheck.txt")"
  log "lab ready: sink answers $SUBNET"
}

# --- measurement -------------------------------------------------------------------------------

line_count() {
  if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# wait_for_samples FILE N: until FILE has N lines (the sampler's), at most ~5 s.
wait_for_samples() {
  local _
  for _ in $(seq 100); do
    [ "$(line_count "$1")" -ge "$2" ] && return 0
    sleep 0.05
  done
  log "warning: packet sampler for $1 is not keeping up; wire figures may be incomplete"
}

# run_measured SCENARIO ORDER LABEL TOOL TARGETS COUNT -- CMD...
# Runs CMD inside the sender namespace under GNU time (so user+sys and max RSS are the tool's own),
# keeps every raw output under $OUT_DIR, and writes a parsed summary next to them.
run_measured() {
  local scen=$1 order=$2 label=$3 tool=$4 targets=$5 count=$6
  shift 7
  local prefix="$OUT_DIR/s$scen.$order.$label"
  printf '%q ' "$@" >"$prefix.cmd"
  # Other work on the host steals CPU from the tool and shows up as lag and socket drops.
  cut -d' ' -f1-3 /proc/loadavg >"$prefix.load"
  log "scenario $scen: $label: $*"
  local rc=0 pid sampler
  # Count packets at the sink's veth while the tool runs: a wire-level rate that does not depend
  # on either tool's own accounting (start-up and drain excluded, unlike sent/wall).
  ip netns exec "$NS_SINK" python3 "$STATS" sample "$VETH_SINK" "$prefix.wire" &
  sampler=$!
  STARTED_PIDS+=("$sampler")
  # On a busy host the sampler can take a while to start: never start the tool before its first
  # sample, or the first packets go uncounted.
  wait_for_samples "$prefix.wire" 1
  local nice_cmd=()
  [ -n "$BENCH_NICE" ] && nice_cmd=(nice -n "$BENCH_NICE")
  ip netns exec "$NS_SND" "${nice_cmd[@]}" /usr/bin/time -o "$prefix.time" -f '%e %U %S %M' "$@" \
    >"$prefix.stdout" 2>"$prefix.stderr" &
  pid=$!
  STARTED_PIDS+=("$pid")
  wait "$pid" || rc=$?
  # Two more samples after the tool has exited, so the last packets are counted too.
  wait_for_samples "$prefix.wire" $(($(line_count "$prefix.wire") + 2))
  kill -TERM "$sampler" 2>/dev/null || true
  wait "$sampler" || true
  STARTED_PIDS=()  # one tool (and its sampler) at a time, so nothing else is in flight
  echo "$rc" >"$prefix.rc"
  python3 "$STATS" summarize --prefix "$prefix" --scenario "$scen" --order "$order" --label "$label" \
    --tool "$tool" --targets "$targets" --count "$count"
  # Raw outputs stay, but compressed once parsed: scenario 1's JSON alone is ~15 MB per run.
  find "$OUT_DIR" -maxdepth 1 \( -name "$(basename "$prefix").stdout" -o -name "$(basename "$prefix").stderr" \) \
    -size +1M -exec gzip -q {} +
  # Let the sink's and sender's queues drain so runs do not overlap in any way.
  sleep 1
}

# The echomesh side of every scenario uses the same flags: count, interval ms, timeout ms, targets
# (its time flags take a unit, so the milliseconds are passed as e.g. 650ms).
run_echomesh() {
  local scen=$1 targets=$2 count=$3 interval=$4 timeout=$5 target_arg=$6
  [ "$FPING_ONLY" -eq 1 ] && return 0
  local args=(-c "$count" -i "${interval}ms" -t "${timeout}ms" -o json)
  if [ -f "$target_arg" ]; then args+=(-f "$target_arg"); else args+=("$target_arg"); fi
  run_measured "$scen" 9 echomesh echomesh "$targets" "$count" -- "$ECHOMESH_AGENT" probe "${args[@]}"
}

scenario_1() {
  # echomesh: all 65,536 addresses at 650 ms per target = 100,825 probes/s nominal; 48 probes per
  # target make the sending window 30.55 s, leaving ~0.9 s of start-up/drain slack for the
  # ">=100,000/s over the whole wall time" goal.
  local count=48 interval=650 fcount=300
  if [ "$QUICK" -eq 1 ]; then count=6; fcount=30; fi
  local ft="$OUT_DIR/targets.$FPING_SUSTAINED_TARGETS"
  write_targets "$FPING_SUSTAINED_TARGETS" "$ft"
  # fping's burst: one probe to each of 65,534 hosts as fast as it can (-i 0). It can do this once;
  # it cannot keep it up (see README).
  run_measured 1 1 fping-burst fping 65534 1 -- "$FPING" -q -C 1 -i 0 -t 1000 -g "$SUBNET"
  # fping's sustainable ceiling: FPING_SUSTAINED_TARGETS x 10 Hz for 30 s (-i 0: no extra gap, its
  # cheapest and fastest mode). If it aborts anyway, the probes sent come from its error message.
  run_measured 1 2 fping-sustained fping "$FPING_SUSTAINED_TARGETS" "$fcount" -- \
    "$FPING" -q -C "$fcount" -p 100 -i 0 -t 500 -f "$ft"
  run_echomesh 1 65536 "$count" "$interval" 500 "$SUBNET"
}

scenario_2() {
  # 1000 targets x 166 ms = 6,024 probes/s for 89 x 166 ms = 14.8 s.
  local count=90
  [ "$QUICK" -eq 1 ] && count=15
  local t="$OUT_DIR/targets.1000"
  write_targets 1000 "$t"
  # fping twice: "paced" spreads packets over the period like echomesh does (every send is its own
  # wake-up); "burst" (-i 0) sends each round of 1000 back to back, its cheapest possible mode.
  run_measured 2 1 fping-paced fping 1000 "$count" -- \
    "$FPING" -q -C "$count" -p 166 -i "$FPING_PACED_GAP_MS" -t 500 -f "$t"
  run_measured 2 2 fping-burst fping 1000 "$count" -- \
    "$FPING" -q -C "$count" -p 166 -i 0 -t 500 -f "$t"
  run_echomesh 2 1000 "$count" 166 500 "$t"
}

scenario_3() {
  # 1000 targets x 10 Hz = 10,000 probes/s for 30 s. fping runs out of sequence numbers at
  # 65,535 probes (~6.5 s); -Q 1 gives per-second counts so its replies before the abort are known.
  local count=300
  [ "$QUICK" -eq 1 ] && count=30
  local t="$OUT_DIR/targets.1000"
  write_targets 1000 "$t"
  run_measured 3 1 fping fping 1000 "$count" -- \
    "$FPING" -q -C "$count" -Q 1 -p 100 -i 0 -t 500 -f "$t"
  run_echomesh 3 1000 "$count" 100 500 "$t"
}

scenario_4() {
  # 100 targets x 20 Hz = 2,000 probes/s for 10 s: a moderate load on an idle path, so the RTTs
  # show each tool's timestamping, not queueing. fping twice, as in scenario 2: paced (-i 0.4 ms,
  # ~period/targets, one wake-up per probe like an evenly paced prober) and burst (-i 0, each round
  # of 100 back to back with hot caches).
  local count=200
  [ "$QUICK" -eq 1 ] && count=40
  local t="$OUT_DIR/targets.100"
  write_targets 100 "$t"
  run_measured 4 1 fping-paced fping 100 "$count" -- "$FPING" -q -C "$count" -p 50 -i 0.4 -t 500 -f "$t"
  run_measured 4 2 fping-burst fping 100 "$count" -- "$FPING" -q -C "$count" -p 50 -i 0 -t 500 -f "$t"
  run_echomesh 4 100 "$count" 50 500 "$t"
}


scenario_5() {
  # Scenario 2's load, but what each tool pays for itself. Over veth the sink's kernel answers
  # inside the sender's own send syscall, so in scenario 2 both tools are billed the sink's work
  # (about 40% of their CPU in a profile). Here both tools run pinned to CPU 0 and RPS hands the
  # sink's receive (and so its reply, and the reply's delivery) to CPU 1, as a real peer's kernel
  # runs on another machine: each tool's CPU time is its own sends, receives, timers and user space.
  local count=90
  [ "$QUICK" -eq 1 ] && count=15
  local t="$OUT_DIR/targets.1000"
  write_targets 1000 "$t"
  sink_rps 2
  run_measured 5 1 fping-paced fping 1000 "$count" -- \
    taskset -c 0 "$FPING" -q -C "$count" -p 166 -i "$FPING_PACED_GAP_MS" -t 500 -f "$t"
  run_measured 5 2 fping-burst fping 1000 "$count" -- \
    taskset -c 0 "$FPING" -q -C "$count" -p 166 -i 0 -t 500 -f "$t"
  if [ "$FPING_ONLY" -eq 0 ]; then
    run_measured 5 9 echomesh echomesh 1000 "$count" -- \
      taskset -c 0 "$ECHOMESH_AGENT" probe -c "$count" -i 166ms -t 500ms -o json -f "$t"
  fi
  sink_rps 0
}

describe_machine() {
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel: $(uname -r)"
    echo "cpus: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "fping: $("$FPING" -v 2>&1 | head -1)"
    if [ "$FPING_ONLY" -eq 0 ]; then
      echo "echomesh-agent: $ECHOMESH_AGENT ($("$ECHOMESH_AGENT" --version 2>/dev/null | head -1 || true))"
    fi
    echo "mode: scenarios $ONLY$([ "$QUICK" -eq 1 ] && echo ', quick')${BENCH_NICE:+, nice $BENCH_NICE}"
  } | tee "$OUT_DIR/machine.txt"
  # Rates and wall times need an idle machine; CPU time per probe is less sensitive.
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  if python3 -c "import os,sys; sys.exit(0 if float(sys.argv[1]) >= os.cpu_count() / 2 else 1)" "$load"; then
    echo "WARNING: load average $load on $(nproc) CPUs: throughput and RTT figures will be noisy" \
      | tee -a "$OUT_DIR/machine.txt"
  fi
}

main() {
  parse_args "$@"
  preflight "$@"
  OUT_DIR=${OUT_DIR:-$BENCH_DIR/out/$(date -u +%Y%m%dT%H%M%SZ)}
  mkdir -p "$OUT_DIR"
  trap sink_lab_cleanup EXIT
  trap 'on_signal INT' INT
  trap 'on_signal TERM' TERM
  describe_machine
  lab_up
  local s
  for s in 1 2 3 4 5; do
    if want "$s"; then "scenario_$s"; fi
  done
  log "raw outputs in $OUT_DIR"
  local quick_flag=()
  [ "$QUICK" -eq 1 ] && quick_flag=(--quick)
  python3 "$STATS" report "$OUT_DIR" "${quick_flag[@]}" | tee "$OUT_DIR/report.txt"
}

main "$@"
