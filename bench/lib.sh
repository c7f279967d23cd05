# bench/lib.sh: what the bench scripts share, sourced by them (it runs nothing by itself). Each
# script measures something different in one of two private labs, and the set-up, the teardown and
# the waits around the measurement are the same every time, so they live here once:
#
#   messages     die, log (a script sets BENCH_NAME, the prefix of its messages, first);
#   sink lab     two namespaces joined by a veth pair, the sink answering every address of
#                10.250.0.0/16 (probe_vs_fping.sh, agent_budget.sh);
#   demo lab     `echomesh-lab demo` with the real aggregator and agents, read with the CLI
#                (cut_down.sh, false_down.sh, accuracy.sh).
#
# Both labs live in their own network namespaces, created here and removed by the cleanup
# functions (which the scripts install as their EXIT trap); the root namespace is never touched.
#
# A script sources it as:
#   BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
#   BENCH_NAME=name
#   . "$BENCH_DIR/lib.sh"

REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN_DIR=${BIN_DIR:-$REPO_ROOT/target/release}

# --- messages ----------------------------------------------------------------------------------

die() {
  echo "$BENCH_NAME: $*" >&2
  exit 2
}

log() {
  printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"
}

# --- tools -------------------------------------------------------------------------------------

# require_gnu_time: /usr/bin/time is GNU time (-o and %M are needed).
require_gnu_time() {
  /usr/bin/time -f '%M' -o /dev/null true 2>/dev/null || die "/usr/bin/time is not GNU time: apt-get install time"
}

# require_probe_agent [HINT]: $ECHOMESH_AGENT exists and has the one-shot `probe` command (an old
# build without it would fail every run; say so once, up front). HINT is one more line of advice.
require_probe_agent() {
  [ -x "$ECHOMESH_AGENT" ] || die "echomesh-agent not found at $ECHOMESH_AGENT.
Build it first:   cargo build --release -p echomesh-agent
or point at one:  ECHOMESH_AGENT=/path/to/echomesh-agent $0${1:+
$1}"
  "$ECHOMESH_AGENT" probe --help >/dev/null 2>&1 \
    || die "$ECHOMESH_AGENT has no working 'probe' subcommand (rebuild: cargo build --release -p echomesh-agent)"
}

# --- the sink lab ------------------------------------------------------------------------------
# A sender namespace and a sink namespace joined by a veth pair. The sink owns the whole
# 10.250.0.0/16 through a local route on lo, so its kernel answers echo requests for 65,536
# addresses; the sender routes that /16 via the sink. The tools run inside the sender namespace.

SUBNET=10.250.0.0/16
SND_ADDR=192.0.2.1   # TEST-NET-1, only ever configured inside our own namespaces
SINK_ADDR=192.0.2.2
CREATED_NS=()
STARTED_PIDS=()

# sink_lab_names PREFIX: the names of the lab's namespaces and veth ends.
sink_lab_names() {
  NS_SND="$1-snd"
  NS_SINK="$1-sink"
  VETH_SND="$1-s"
  VETH_SINK="$1-k"
}

ns_sysctl() {
  # Runs inside the namespace, so it writes that namespace's own copy of a per-netns sysctl.
  ip netns exec "$1" sysctl -qw "$2" >/dev/null
}

sink_lab_up() {
  local ns
  for ns in "$NS_SND" "$NS_SINK"; do
    [ ! -e "/run/netns/$ns" ] || die "namespace $ns already exists (left over from a crashed run with the same PID?)"
  done
  log "building lab: namespaces $NS_SND, $NS_SINK"
  ip netns add "$NS_SND"; CREATED_NS+=("$NS_SND")
  ip netns add "$NS_SINK"; CREATED_NS+=("$NS_SINK")
  # Create the veth pair directly inside the namespaces so it never appears in the root namespace.
  ip -n "$NS_SND" link add "$VETH_SND" type veth peer name "$VETH_SINK" netns "$NS_SINK"
  ip -n "$NS_SND" addr add "$SND_ADDR/30" dev "$VETH_SND"
  ip -n "$NS_SINK" addr add "$SINK_ADDR/30" dev "$VETH_SINK"
  for ns in "$NS_SND" "$NS_SINK"; do ip -n "$ns" link set lo up; done
  ip -n "$NS_SND" link set "$VETH_SND" up
  ip -n "$NS_SINK" link set "$VETH_SINK" up
  # The sink treats every address of the /16 as its own, so its kernel answers all of them.
  ip -n "$NS_SINK" route add local "$SUBNET" dev lo
  ip -n "$NS_SND" route add "$SUBNET" via "$SINK_ADDR"

  # Sink tuning, all per-namespace: echo replies are exempt from ICMP rate limiting under the
  # default icmp_ratemask, but a host may have changed that, so switch the per-netns limiter off;
  # never ignore echo; no reverse-path filtering (replies and requests share the one veth anyway).
  ns_sysctl "$NS_SINK" net.ipv4.icmp_ratelimit=0
  ns_sysctl "$NS_SINK" net.ipv4.icmp_echo_ignore_all=0
  ns_sysctl "$NS_SINK" net.ipv4.icmp_echo_ignore_broadcasts=0
  for ns in "$NS_SND" "$NS_SINK"; do
    ns_sysctl "$ns" net.ipv4.conf.all.rp_filter=0
    ns_sysctl "$ns" net.ipv4.conf.default.rp_filter=0
  done
  ns_sysctl "$NS_SND" "net.ipv4.conf.$VETH_SND.rp_filter=0"
  ns_sysctl "$NS_SINK" "net.ipv4.conf.$VETH_SINK.rp_filter=0"
}

# The sink's receive processing on CPU 1 (sink_rps 2: RPS on its veth), or back on whichever CPU
# sent (sink_rps 0).
sink_rps() {
  ip netns exec "$NS_SINK" sh -c "echo $1 > /sys/class/net/$VETH_SINK/queues/rx-0/rps_cpus" \
    || die "cannot set RPS on the sink's veth (kernel without CONFIG_RPS?)"
}

# sink_lab_cleanup: the EXIT trap. Our tools first (the PIDs in STARTED_PIDS), then anything still
# living in our namespaces (only we put processes there: a namespace cannot be deleted while a
# process holds it), then the namespaces; exits with the script's status.
sink_lab_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  local pid ns
  for pid in "${STARTED_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for ns in "${CREATED_NS[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -TERM "$pid" 2>/dev/null
    done
  done
  sleep 0.2
  for ns in "${CREATED_NS[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null
    done
  done
  wait 2>/dev/null
  # Deleting the sender namespace also destroys the veth pair (both ends).
  for ns in "${CREATED_NS[@]}"; do
    ip netns delete "$ns" 2>/dev/null && log "removed namespace $ns"
  done
  CREATED_NS=()
  exit "$rc"
}

# on_signal INT|TERM: the INT and TERM traps; the EXIT trap cleans up.
on_signal() {
  log "interrupted by SIG$1, cleaning up"
  # 128 + signal number, like a shell would report it.
  case "$1" in INT) exit 130 ;; TERM) exit 143 ;; esac
}

# write_targets N FILE: the first N addresses after 10.250.0.0, one per line.
write_targets() {
  python3 - "$1" "$2" <<'EOF'
import ipaddress, sys
n, path = int(sys.argv[1]), sys.argv[2]
base = int(ipaddress.ip_address("10.250.0.1"))
with open(path, "w") as fh:
    fh.writelines(f"{ipaddress.ip_address(base + i)}\n" for i in range(n))
EOF
}

# --- the demo lab ------------------------------------------------------------------------------
# `echomesh-lab demo --prefix $PREFIX` in the background (DEMO_PID), its aggregator's gRPC URL
# (URL), and optionally an `echomesh watch` of every state change (WATCH_PID). The script sets
# PREFIX and WORK (a temporary directory the cleanup removes).

LAB="$BIN_DIR/echomesh-lab"
CLI="$BIN_DIR/echomesh"
AGENT="$BIN_DIR/echomesh-agent"
DEMO_PID=""
WATCH_PID=""
URL=""

# demo_preflight [COMMAND...]: root, the four binaries, and the commands named.
demo_preflight() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
  local b c
  for b in "$LAB" "$CLI" "$AGENT" "$BIN_DIR/echomesh-aggregator"; do
    [ -x "$b" ] || die "$b is missing; build the binaries first:
cargo build --release -p echomesh-agent -p echomesh-aggregator -p echomesh-cli -p echomesh-lab
(or point BIN_DIR at a folder that has them)"
  done
  for c in "$@"; do
    command -v "$c" >/dev/null || die "needs $c"
  done
}

# demo_start NODES: starts the demo (its output in $WORK/demo.log) and waits up to 30 s for its URL.
demo_start() {
  "$LAB" demo --nodes "$1" --prefix "$PREFIX" --refresh 0s >"$WORK/demo.log" 2>&1 &
  DEMO_PID=$!
  local _
  for _ in $(seq 1 300); do
    URL=$("$LAB" list 2>/dev/null | awk -v p="$PREFIX" '$1 == p && $NF ~ /^http/ {print $NF}')
    [ -n "$URL" ] && return 0
    sleep 0.1
  done
  echo "$BENCH_NAME: the lab did not start; its log:" >&2
  cat "$WORK/demo.log" >&2
  exit 1
}

# demo_watch FILE: every edge state change from now on, as JSON lines, into FILE.
demo_watch() {
  "$CLI" --aggregator "$URL" watch --every-change -o json >"$1" 2>/dev/null &
  WATCH_PID=$!
}

# demo_edges: every edge, as `echomesh edges -o json`.
demo_edges() {
  "$CLI" --aggregator "$URL" edges -o json --limit 10000
}

# full_mesh_edges NODES: the edges of a full mesh of NODES nodes in an IPv4 lab (two agents per
# node, each probing every other agent's one address).
full_mesh_edges() {
  echo $(( $1 * 2 * ($1 * 2 - 1) ))
}

# count_edges STATE [NODE]: how many edges are in STATE (up, down, ...); with NODE, only those with
# exactly one end on it. -1 when the aggregator does not answer.
count_edges() {
  demo_edges 2>/dev/null | python3 -c '
import json, sys
state, node = sys.argv[1], sys.argv[2]
try:
    edges = json.load(sys.stdin)["edges"]
except Exception:
    print(-1); sys.exit()
sel = [e for e in edges if not node or ((e["source_node"] == node) != (e["target_node"] == node))]
print(sum(1 for e in sel if e["state"] == state))' "$1" "${2:-}"
}

# wait_for_edges STATE N [NODE]: until at least N edges (crossing NODE, if given) are in STATE;
# fails after 60 s.
wait_for_edges() {
  local _
  for _ in $(seq 1 600); do
    [ "$(count_edges "$1" "${3:-}")" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "$BENCH_NAME: not $2 edges $1 after 60 s" >&2
  return 1
}

# demo_cleanup: the EXIT trap. Stops the watch and the demo (which stops what it started and
# deletes its namespaces), then `echomesh-lab down` for whatever a killed demo left.
demo_cleanup() {
  [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null || true
  if [ -n "$DEMO_PID" ]; then
    kill -INT "$DEMO_PID" 2>/dev/null || true
    wait "$DEMO_PID" 2>/dev/null || true
  fi
  "$LAB" down --prefix "$PREFIX" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
