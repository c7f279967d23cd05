#!/usr/bin/env bash
# Shows that the agent runs as the images and DaemonSets run it: as uid 65532, with NET_RAW as the
# only capability in its bounding set, getting NET_RAW from the file capability cap_net_raw+ep (as
# Dockerfile.agent sets it), and that it fails with its clear capability error when that is missing.
#
#   deploy/caps-test.sh [path/to/echomesh-agent]     (default: builds target/debug/echomesh-agent)
#
# Needs root (setcap, setpriv) and util-linux's setpriv plus libcap2-bin's setcap (Debian packages
# util-linux and libcap2-bin; installed here when missing). Each case starts the agent the way a
# container runtime would: setpriv switches to uid 65532 with an empty permitted set (what Docker and
# cri-dockerd give non-root processes; containerd's may be wider), then executes the agent.
#
# Cases:
#   1. as shipped: file capability, bounding set {NET_RAW}, no no_new_privs -> probes 127.0.0.1
#   2. no file capability (e.g. a build tool that dropped the xattr) -> exit 2, names CAP_NET_RAW
#   3. file capability but no_new_privs (allowPrivilegeEscalation: false) -> exit 2, names CAP_NET_RAW:
#      the reason the DaemonSets set allowPrivilegeEscalation: true
#   4. file capability, but NET_RAW not added to the container -> the kernel refuses to execute it
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" != 0 ]; then
  echo "caps-test: skipped: needs root to set file capabilities and switch uid (CI runs as root)"
  exit 0
fi
need=()
command -v setpriv >/dev/null || need+=(util-linux)
command -v setcap >/dev/null || need+=(libcap2-bin)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bin="${1:-}"
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build -q --locked -p echomesh-agent --bin echomesh-agent)
  bin="$repo/target/debug/echomesh-agent"
fi

# A directory uid 65532 can traverse, on a filesystem that keeps security.* xattrs.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
install -m 0755 "$bin" "$work/agent-capped"
install -m 0755 "$bin" "$work/agent-plain"
if ! setcap cap_net_raw+ep "$work/agent-capped" 2>"$work/setcap.err"; then
  echo "caps-test: skipped: this filesystem does not keep file capabilities ($(cat "$work/setcap.err"))"
  exit 0
fi

as_container() { # bounding set, then the command; uid/gid 65532, no supplementary groups, no caps
  local bounding="$1"; shift
  setpriv --reuid 65532 --regid 65532 --clear-groups --inh-caps=-all --bounding-set="$bounding" "$@"
}
probe=(probe -c 3 -i 20ms -t 500ms 127.0.0.1)
passed=0 failed=0
check() { # name, expected outcome (ok | cap-error | exec-refused), command...
  local name="$1" want="$2"; shift 2
  local rc=0
  "$@" >"$work/out" 2>&1 || rc=$?
  local got
  if [ "$rc" = 0 ]; then got=ok
  elif [ "$rc" = 2 ] && grep -q 'CAP_NET_RAW' "$work/out"; then got=cap-error
  elif grep -qi 'operation not permitted' "$work/out"; then got=exec-refused
  else got="exit $rc"
  fi
  if [ "$got" = "$want" ]; then
    echo "ok   $name: $got"
    passed=$((passed + 1))
  else
    echo "FAIL $name: want $want, got $got"
    sed 's/^/     | /' "$work/out"
    failed=$((failed + 1))
  fi
}

check "as shipped (file cap, bounding NET_RAW)" ok \
  as_container -all,+net_raw "$work/agent-capped" "${probe[@]}"
check "without the file capability" cap-error \
  as_container -all,+net_raw "$work/agent-plain" "${probe[@]}"
check "with no_new_privs (allowPrivilegeEscalation: false)" cap-error \
  as_container -all,+net_raw setpriv --no-new-privs "$work/agent-capped" "${probe[@]}"
check "NET_RAW not added to the container" exec-refused \
  as_container -all "$work/agent-capped" "${probe[@]}"

echo "caps-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
