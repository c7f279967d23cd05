#!/usr/bin/env bash
# Offline validation of deploy/ and the Dockerfiles; exits non-zero on any violation.
#
# What CI needs (this script installs whatever is missing; root for apt, as CI runs):
#   apt-get install -y --no-install-recommends python3 python3-venv prometheus   # prometheus: promtool
#   pip install -r deploy/tools-requirements.txt    # into the virtualenv target/deploy-tools
#
# Usage: deploy/validate.sh [--sync-rules]
#   --sync-rules   regenerate components/monitoring/prometheusrule.yaml from rules.yaml, then validate
# Environment:
#   KUBECTL=...           render with this kubectl instead of the pinned one (needs kustomize >= v5;
#                         Debian's kubernetes-client package is 1.20 with kustomize v2: too old)
#   ECHOMESH_TOOLS_DIR=   where the virtualenv lives (default: <repo>/target/deploy-tools)
#
# What it checks: deploy/validate.py's docstring. In short: deploy/ and every overlay render; every
# object is schema-valid (strict) for the oldest and newest supported Kubernetes, CiliumNetworkPolicy
# against Cilium's CRD schema (deploy/testdata/); RBAC is get/list/watch on nodes and pods only (plus
# OpenShift's `use` of our SCC, and nodes/status + events writes only with components/node-conditions); agents add no capability but NET_RAW and drop ALL, run on Linux and
# never on virtual nodes; non-root, read-only root filesystems, seccomp, token mounts, tolerations,
# [::] listeners, dual-stack Service, wiring, and the policy each overlay chose (none, standard with its
# CIDRs, Cilium); the alert and recording rules pass `promtool check rules` and `promtool test rules`;
# the Grafana dashboard has Grafana's fields, PromQL that promtool parses and only exported or recorded
# series, and ships as a sidecar-labelled ConfigMap; the Dockerfiles pass hadolint, pin base images by
# digest and cross-compile; and deliberately broken manifests, dashboards and Dockerfiles are fed
# through the same checks and must fail, so no check can pass silently.
set -euo pipefail

deploy="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$deploy")"
tools="${ECHOMESH_TOOLS_DIR:-$repo/target/deploy-tools}"
requirements="$deploy/tools-requirements.txt"

sync_rules=0
for arg in "$@"; do
  case "$arg" in
    --sync-rules) sync_rules=1 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "validate.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

log() { echo "validate.sh: $*" >&2; }

# --- tools -----------------------------------------------------------------------------------
apt_need=()
command -v python3 >/dev/null || apt_need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_need+=(python3-venv)
command -v promtool >/dev/null || apt_need+=(prometheus)
if [ ${#apt_need[@]} -gt 0 ]; then
  log "installing ${apt_need[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_need[@]}" >/dev/null
fi

# The virtualenv is rebuilt only when tools-requirements.txt changes.
stamp="$tools/.requirements"
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
  log "installing pinned tools into $tools (pip)"
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check --no-input -r "$requirements"
  cp "$requirements" "$stamp"
fi
py="$tools/bin/python"
kubectl="${KUBECTL:-$tools/bin/kubectl}"
promtool="$(command -v promtool)"

if [ "$sync_rules" = 1 ]; then
  "$py" "$deploy/validate.py" --sync-rules
fi

# --- manifests and rules -----------------------------------------------------------------------
status=0
summary="$("$py" "$deploy/validate.py" --kubectl "$kubectl" --promtool "$promtool")" || status=$?
[ -n "$summary" ] && echo "$summary" | sed '$d'   # FAIL lines, if any; the summary line comes last

# --- negative self-test through the command line ---------------------------------------------
# validate.py breaks the render in-process (see _mutations); this one goes through a file on disk, as a
# hand-edited manifest would: the real render with SYS_ADMIN added to the agents must be rejected.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$kubectl" kustomize "$deploy" > "$tmp/good.yaml"
sed -E 's/^( *)- NET_RAW$/\1- NET_RAW\n\1- SYS_ADMIN/' "$tmp/good.yaml" > "$tmp/bad.yaml"
negative="missed"
if ! grep -q -- '- SYS_ADMIN' "$tmp/bad.yaml"; then
  echo "FAIL negative self-test: could not inject SYS_ADMIN into the render (did its layout change?)"
  status=1
elif "$py" "$deploy/validate.py" --check-file "$tmp/bad.yaml" > "$tmp/bad.out" 2>&1; then
  echo "FAIL negative self-test: a render whose agents add SYS_ADMIN passed the checks"
  status=1
elif ! grep -q 'SYS_ADMIN' "$tmp/bad.out"; then
  echo "FAIL negative self-test: the bad render failed, but not for SYS_ADMIN:"
  cat "$tmp/bad.out"
  status=1
else
  negative="rejected"
fi

# --- Dockerfiles -------------------------------------------------------------------------------
dockerfiles=()
for f in "$repo/Dockerfile.agent" "$repo/Dockerfile.aggregator"; do
  if [ -f "$f" ]; then dockerfiles+=("$f"); else echo "FAIL missing ${f#"$repo"/}"; status=1; fi
done
if [ ${#dockerfiles[@]} -gt 0 ] && ! "$tools/bin/hadolint" --no-color --failure-threshold info "${dockerfiles[@]}"; then
  echo "FAIL hadolint"
  status=1
fi

# --- one-line summary ----------------------------------------------------------------------------
last="$(echo "$summary" | tail -n 1)"
if [ "$status" = 0 ]; then
  echo "${last}; CLI bad-render test ${negative}; hadolint clean on ${#dockerfiles[@]} Dockerfiles"
else
  echo "deploy validation FAILED (${last:-validate.py printed nothing})"
fi
exit "$status"
