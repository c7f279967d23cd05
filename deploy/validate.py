#!/usr/bin/env python3
"""Offline checks of the rendered echomesh manifests; deploy/validate.sh sets up the tools and runs this.

What a pass means:
  * every kustomize entry point renders, and every built-in object is valid against the Kubernetes
    OpenAPI schemas (strict: unknown fields are errors) of the oldest and newest supported versions;
  * the security posture the docs promise holds: RBAC is get/list/watch on nodes and pods only (plus
    `create` tokenreviews, and `patch` nodes/status with `create`/`patch` events exactly when the
    aggregator runs with components/node-conditions' ECHOMESH_NODE_CONDITION_AFTER), agents
    carry no capability but NET_RAW and drop ALL, every pod is non-root with a read-only root
    filesystem and seccomp RuntimeDefault, agents mount no API token and tolerate every taint;
  * the objects are wired to each other (selectors, ports, Service names, priority class, monitors);
  * the NetworkPolicies only open what they say they open, and each entry point carries the policy
    choice it names: none, standard NetworkPolicy with the CIDRs of its `echomesh-cidrs` object (no
    placeholder left, every CIDR valid, never 0.0.0.0/0 or ::/0), or CiliumNetworkPolicy valid
    against Cilium's CRD schema (deploy/testdata/) with nodes matched by the host and remote-node
    entities and ICMP echo only;
  * agents run on Linux nodes only and never on virtual nodes; every listener is `[::]:PORT` and the
    Service is PreferDualStack; images are registry-qualified (never a bare Docker Hub name);
  * the OpenShift SCC grants the agents NET_RAW and hostNetwork and nothing more, to them alone;
  * the PrometheusRule carries exactly the groups of rules.yaml, and promtool accepts and tests them;
    recording rules are named level:metric:operations after an exported series;
  * the Grafana dashboard (components/monitoring/dashboards/echomesh.json) is JSON with what Grafana
    needs (title, uid, schemaVersion, templating with the datasource, node and network variables,
    panels with type, gridPos and targets on the datasource variable), every query parses (promtool
    check rules on a throwaway rule file), every series it reads is exported (docs/metrics.md's
    tables) or recorded in rules.yaml, and the monitoring render carries it as the ConfigMap the
    Grafana sidecar picks up (label grafana_dashboard: "1");
  * the Dockerfiles pin their base images by digest and cross-compile from the build platform for
    TARGETARCH amd64 and arm64 (cargo --target);
  * a self-test feeds deliberately broken manifests through the same checks and requires each to fail,
    so a check that silently stopped checking fails the run.

Usage:
  validate.py --kubectl KUBECTL [--promtool PROMTOOL]   full run (what validate.sh does)
  validate.py --check-file RENDERED.yaml                 only the object checks, on a rendered file
  validate.py --sync-rules                               regenerate prometheusrule.yaml from rules.yaml
Exit status: 0 when everything passes, 1 on any violation, 2 on a usage or tool error.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

DEPLOY = Path(__file__).resolve().parent
MONITORING = DEPLOY / "components" / "monitoring"
RULES_FILE = MONITORING / "rules.yaml"
RULES_TEST_FILE = MONITORING / "rules_test.yaml"
PROMETHEUSRULE_FILE = MONITORING / "prometheusrule.yaml"
DASHBOARD_FILE = MONITORING / "dashboards" / "echomesh.json"
DASHBOARD_CONFIGMAP = "echomesh-grafana-dashboard"
METRICS_DOC = DEPLOY.parent / "docs" / "metrics.md"

TESTDATA = DEPLOY / "testdata"
CILIUM_CRD_FILE = TESTDATA / "ciliumnetworkpolicies.cilium.io.yaml"

# Entry points that must render; each is checked as a whole install, with the NetworkPolicy choice
# it makes: "none", "standard" (components/networkpolicy) or "cilium" (components/cilium).
ENTRY_POINTS = {
    "deploy": (DEPLOY, "none"),
    "deploy/overlays/monitoring": (DEPLOY / "overlays" / "monitoring", "none"),
    "deploy/overlays/networkpolicy": (DEPLOY / "overlays" / "networkpolicy", "standard"),
    "deploy/overlays/cilium": (DEPLOY / "overlays" / "cilium", "cilium"),
    "deploy/overlays/openshift": (DEPLOY / "overlays" / "openshift", "none"),
    "deploy/overlays/gke-autopilot": (DEPLOY / "overlays" / "gke-autopilot", "none"),
    "deploy/overlays/tls": (DEPLOY / "overlays" / "tls", "none"),
    "deploy/overlays/node-conditions": (DEPLOY / "overlays" / "node-conditions", "none"),
}
# Entry points whose agents are only the pod-network DaemonSet (no hostNetwork on the platform).
POD_NETWORK_ONLY = {"deploy/overlays/gke-autopilot"}
# Oldest and newest Kubernetes versions the manifests must be valid for. The oldest is where every
# field used here is GA (native gRPC probes: 1.27, PDB unhealthyPodEvictionPolicy: 1.31).
K8S_VERSIONS = ("1.31.0", "1.37.0")

NAMESPACE = "echomesh"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "SecurityContextConstraints"}
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
# Kinds with no schema in kubernetes-validate: the monitoring kinds are checked by check_monitoring,
# CiliumNetworkPolicy against the vendored CRD schema, the SCC by check_openshift.
CRD_KINDS = MONITORING_KINDS | {"CiliumNetworkPolicy", "SecurityContextConstraints"}
POLICY_KINDS = {"NetworkPolicy", "CiliumNetworkPolicy"}
# Placeholder CIDR in components/networkpolicy, replaced from the `echomesh-cidrs` object.
CIDR_PLACEHOLDER = "192.0.2.0/32"
# Listen addresses: every address of both families.
LISTEN = {"ECHOMESH_GRPC_LISTEN": "[::]:7070", "ECHOMESH_HTTP_LISTEN": "[::]:7071"}
AGENT_LISTEN = "[::]:7072"
# Virtual nodes the agents must stay off: (label, value) pairs that need a NotIn in a required term.
VIRTUAL_NODE_LABELS = {("type", "virtual-kubelet"), ("eks.amazonaws.com/compute-type", "fargate")}
# The one RBAC rule besides read-only nodes/pods: OpenShift's `use` of a named SCC.
SCC_RULE = {"apiGroups": ["security.openshift.io"], "resources": ["securitycontextconstraints"], "verbs": ["use"]}
ALLOWED_SCCS = {"echomesh-agent": "echomesh-agent", "nonroot-v2": "echomesh-aggregator"}  # SCC -> the one SA
AGENT_DAEMONSETS = {"echomesh-agent-pod": "pod", "echomesh-agent-host": "host"}
AGGREGATOR = "echomesh-aggregator"
GRPC_PORT, HTTP_PORT, AGENT_PORT = 7070, 7071, 7072
READ_VERBS = {"get", "list", "watch"}
READ_RESOURCES = {"nodes", "pods"}
# The one write the aggregator may make: TokenReviews, to verify the agents' projected tokens.
TOKENREVIEW_RULE = {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
# The writes of components/node-conditions (--node-condition-after), allowed only with that flag: the
# Node status condition and Events about Nodes (in namespace default, hence a ClusterRole).
NODE_CONDITION_ENV = "ECHOMESH_NODE_CONDITION_AFTER"
NODE_CONDITION_RULES = (
    {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
)
# Where the agent's projected token is mounted, and for whom it is issued.
AGENT_TOKEN_DIR, AGENT_TOKEN_PATH, AGENT_TOKEN_AUDIENCE = "/var/run/secrets/echomesh", "token", "echomesh"
AGENT_TOKEN_MAX_SECONDS = 3600
AGENT_CAPS = {"NET_RAW"}
REQUIRED_ALERTS = {"NodeUnreachable", "HighPacketLoss", "HighLatencyP99", "AgentMissing", "AggregatorDown"}
# Recording rules are named level:metric:operations (Prometheus convention), never echomesh_*.
RECORD_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*:([a-zA-Z_][a-zA-Z0-9_]*):[a-zA-Z0-9_]+")
# Series the dashboard must show: agents connected, worst edges, expected-down nodes.
DASHBOARD_REQUIRED = {"echomesh_connected_agents", "echomesh_top_edge_loss_ratio", "echomesh_node_expected_down"}
SEVERITIES = {"critical", "warning", "info"}
# "Small" for an agent that runs on every node.
AGENT_MAX_CPU_MILLI, AGENT_MAX_MEMORY = 500, 256 * 2**20

Obj = dict[str, Any]


class ToolError(Exception):
    """A tool could not run: not a finding about the manifests (exit 2)."""


# ---------------------------------------------------------------------------------------- helpers


def name_of(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def find(objs: Iterable[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [o for o in objs if o.get("kind") == kind and (name is None or o["metadata"].get("name") == name)]


def pod_spec(obj: Obj) -> Obj:
    return obj.get("spec", {}).get("template", {}).get("spec", {})


def all_containers(spec: Obj) -> list[Obj]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []]


def selects(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    """Whether a matchLabels selector selects these labels (an empty selector selects nothing here)."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def cap_name(cap: str) -> str:
    cap = str(cap).upper()
    return cap[4:] if cap.startswith("CAP_") else cap


def quantity(q: Any) -> float:
    """A Kubernetes resource quantity as a number (cores for CPU, bytes for memory)."""
    s = str(q)
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", s)
    if not m:
        raise ValueError(f"bad quantity {s!r}")
    num, unit = float(m.group(1)), m.group(2)
    units = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    if unit not in units:
        raise ValueError(f"unknown unit in quantity {s!r}")
    return num * units[unit]


def effective(pod: Obj, container: Obj, key: str) -> Any:
    """A securityContext field as the kubelet sees it: container level wins over pod level."""
    csc, psc = container.get("securityContext") or {}, pod.get("securityContext") or {}
    return csc[key] if key in csc else psc.get(key)


# ----------------------------------------------------------------------------------------- checks


def check_schema(objs: list[Obj], versions: Iterable[str] = K8S_VERSIONS) -> list[str]:
    import kubernetes_validate  # installed by validate.sh

    out = []
    for obj in objs:
        if obj.get("kind") in CRD_KINDS:
            continue  # not built in: check_monitoring, check_cilium_policy, check_openshift
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                out.append(f"{name_of(obj)}: no Kubernetes {version} schema for {obj.get('apiVersion')}")
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                out.append(
                    f"{name_of(obj)}: invalid for Kubernetes {version} at {path or '<root>'}: {e.message}"
                )
    return out


def check_rbac(objs: list[Obj]) -> list[str]:
    out = []
    node_conditions = uses_node_conditions(objs)
    roles = find(objs, "ClusterRole") + find(objs, "Role")
    scc_grants: dict[str, str] = {}  # Role name -> the SCC it lets use
    for role in roles:
        if role.get("aggregationRule"):
            out.append(f"{name_of(role)}: aggregationRule would pull in other roles' verbs")
        for rule in role.get("rules") or []:
            if {k: v for k, v in rule.items() if k != "resourceNames"} == SCC_RULE:
                names = rule.get("resourceNames") or []
                if role["kind"] != "Role" or len(names) != 1 or names[0] not in ALLOWED_SCCS:
                    out.append(
                        f"{name_of(role)}: SCC `use` must be a namespaced Role naming one of "
                        f"{sorted(ALLOWED_SCCS)}, got resourceNames {names}"
                    )
                else:
                    scc_grants[role["metadata"]["name"]] = names[0]
                continue
            if {"nodes/status", "events"} & set(rule.get("resources") or []):
                if rule not in NODE_CONDITION_RULES or role["kind"] != "ClusterRole":
                    out.append(
                        f"{name_of(role)}: node-conditions RBAC must be exactly `patch` on nodes/status and "
                        f"`create`, `patch` on events, in a ClusterRole; got {rule}"
                    )
                elif not node_conditions:
                    out.append(
                        f"{name_of(role)}: {rule['resources'][0]} writes without {NODE_CONDITION_ENV} "
                        f"(use components/node-conditions whole)"
                    )
                continue
            if "tokenreviews" in (rule.get("resources") or []):
                if rule != TOKENREVIEW_RULE or role["kind"] != "ClusterRole":
                    out.append(
                        f"{name_of(role)}: tokenreviews must be exactly `create` in the ClusterRole, got {rule}"
                    )
                continue
            if role["kind"] == "ClusterRole" and "pods" in (rule.get("resources") or []):
                out.append(
                    f"{name_of(role)}: pods through the ClusterRole (every namespace); read them through a "
                    f"namespaced Role in {NAMESPACE}"
                )
            verbs = set(rule.get("verbs") or [])
            if bad := verbs - READ_VERBS:
                out.append(f"{name_of(role)}: RBAC verb(s) beyond get/list/watch: {sorted(bad)}")
            if bad := set(rule.get("resources") or []) - READ_RESOURCES:
                out.append(f"{name_of(role)}: RBAC resource(s) beyond nodes/pods: {sorted(bad)}")
            if set(rule.get("apiGroups") or []) - {""}:
                out.append(f"{name_of(role)}: RBAC apiGroups beyond the core group: {rule.get('apiGroups')}")
            if rule.get("nonResourceURLs"):
                out.append(f"{name_of(role)}: RBAC nonResourceURLs: {rule['nonResourceURLs']}")
    role_names = {(r["kind"], r["metadata"]["name"]) for r in roles}
    for binding in find(objs, "ClusterRoleBinding") + find(objs, "RoleBinding"):
        ref = binding.get("roleRef", {})
        if (ref.get("kind"), ref.get("name")) not in role_names:
            out.append(
                f"{name_of(binding)}: binds {ref.get('kind')}/{ref.get('name')}, which is not one of ours"
            )
        scc = scc_grants.get(ref.get("name")) if ref.get("kind") == "Role" else None
        for subject in binding.get("subjects") or []:
            if scc is not None:
                if (subject.get("kind"), subject.get("name")) != ("ServiceAccount", ALLOWED_SCCS[scc]):
                    out.append(
                        f"{name_of(binding)}: SCC {scc} granted to {subject.get('kind')}/"
                        f"{subject.get('name')}; only ServiceAccount/{ALLOWED_SCCS[scc]} may use it"
                    )
                continue
            if (subject.get("kind"), subject.get("name")) != ("ServiceAccount", AGGREGATOR):
                out.append(
                    f"{name_of(binding)}: grants to {subject.get('kind')}/{subject.get('name')}; "
                    f"only the aggregator's ServiceAccount may hold API permissions"
                )
    def grants(kind: str, resource: str) -> bool:
        return any(
            resource in (r.get("resources") or []) and set(r.get("verbs") or []) >= READ_VERBS
            for role in roles
            if role["kind"] == kind
            for r in role.get("rules") or []
        )

    if not grants("ClusterRole", "nodes"):
        out.append("ClusterRole: the aggregator needs get/list/watch on nodes")
    if not grants("Role", "pods"):
        out.append(f"Role: the aggregator needs get/list/watch on pods in {NAMESPACE}")
    if not any(r == TOKENREVIEW_RULE for role in roles for r in role.get("rules") or []):
        out.append("ClusterRole: the aggregator needs `create` on tokenreviews (agent authentication)")
    for want in NODE_CONDITION_RULES if node_conditions else ():
        if not any(r == want for role in find(objs, "ClusterRole") for r in role.get("rules") or []):
            out.append(
                f"ClusterRole: {NODE_CONDITION_ENV} needs {want['verbs']} on {want['resources'][0]} "
                f"(components/node-conditions)"
            )
    return out


def uses_node_conditions(objs: list[Obj]) -> bool:
    """The render enables node conditions (components/node-conditions): the aggregator has the env."""
    return any(
        e.get("name") == NODE_CONDITION_ENV
        for d in find(objs, "Deployment", AGGREGATOR)
        for c in pod_spec(d).get("containers") or []
        for e in c.get("env") or []
    )


def check_node_conditions(objs: list[Obj]) -> list[str]:
    """With node conditions: the threshold is a duration the aggregator accepts (10s..24h)."""
    out = []
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for d in find(objs, "Deployment", AGGREGATOR):
        for c in pod_spec(d).get("containers") or []:
            for e in c.get("env") or []:
                if e.get("name") != NODE_CONDITION_ENV:
                    continue
                m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(e.get("value", "")))
                secs = float(m.group(1)) * scale[m.group(2)] if m else -1
                if not 10 <= secs <= 24 * 3600:
                    out.append(
                        f"{name_of(d)}: {NODE_CONDITION_ENV} {e.get('value')!r} is not a duration within "
                        f"10s..24h (the aggregator would refuse to start)"
                    )
    return out


def check_pod_security(obj: Obj, allowed_caps: set[str]) -> list[str]:
    """Posture every echomesh pod shares; allowed_caps is what its containers may add."""
    out, pod, n = [], pod_spec(obj), name_of(obj)
    for flag in ("hostPID", "hostIPC"):
        if pod.get(flag):
            out.append(f"{n}: {flag} is set")
    for vol in pod.get("volumes") or []:
        if "hostPath" in vol:
            out.append(f"{n}: hostPath volume {vol.get('name')}")
    if not pod.get("priorityClassName"):
        out.append(f"{n}: no priorityClassName")
    for c in all_containers(pod):
        cn = f"{n} container {c.get('name')}"
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        if "ALL" not in {cap_name(x) for x in caps.get("drop") or []}:
            out.append(f"{cn}: capabilities do not drop ALL")
        added = {cap_name(x) for x in caps.get("add") or []}
        if bad := added - allowed_caps:
            out.append(f"{cn}: capability {sorted(bad)} added; allowed: {sorted(allowed_caps) or 'none'}")
        if sc.get("privileged"):
            out.append(f"{cn}: privileged")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{cn}: root filesystem is not read-only")
        if effective(pod, c, "runAsNonRoot") is not True:
            out.append(f"{cn}: runAsNonRoot is not true")
        if effective(pod, c, "runAsUser") in (None, 0):
            out.append(f"{cn}: runAsUser is root or unset (the image's user would decide)")
        seccomp = effective(pod, c, "seccompProfile") or {}
        if seccomp.get("type") != "RuntimeDefault":
            out.append(f"{cn}: seccomp profile is not RuntimeDefault")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(part) or {}):
                    out.append(f"{cn}: no {part}.{r}")
        image = str(c.get("image", ""))
        tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
        if not tag or tag == "latest":
            out.append(f"{cn}: image {image!r} has no pinned tag")
        first = image.split("/", 1)[0]
        if "/" not in image or not ("." in first or ":" in first or first == "localhost"):
            out.append(
                f"{cn}: image {image!r} has no registry host: it would be pulled from Docker Hub "
                f"(set it once with kustomize `images:`)"
            )
    return out


def check_agents(objs: list[Obj], pod_network_only: bool = False) -> list[str]:
    out = []
    daemonsets = {d["metadata"]["name"]: d for d in find(objs, "DaemonSet")}
    want = {"echomesh-agent-pod"} if pod_network_only else set(AGENT_DAEMONSETS)
    if set(daemonsets) != want:
        out.append(f"DaemonSets: want exactly {sorted(want)}, have {sorted(daemonsets)}")
    classes = {p["metadata"]["name"] for p in find(objs, "PriorityClass")}
    for name, ds in daemonsets.items():
        n, pod = name_of(ds), pod_spec(ds)
        out += check_pod_security(ds, AGENT_CAPS)
        if pod.get("automountServiceAccountToken") is not False:
            out.append(f"{n}: automountServiceAccountToken is not false (agents need no API access)")
        if not any(
            t.get("operator") == "Exists" and not t.get("key") and not t.get("effect")
            for t in pod.get("tolerations") or []
        ):
            out.append(f"{n}: does not tolerate every taint (want a toleration with only operator: Exists)")
        if pod.get("priorityClassName") and pod["priorityClassName"] not in classes:
            out.append(f"{n}: priorityClassName {pod['priorityClassName']} is not defined here")
        if (pod.get("nodeSelector") or {}).get("kubernetes.io/os") != "linux":
            out.append(f"{n}: no nodeSelector kubernetes.io/os: linux (agents would land on Windows nodes)")
        out += check_virtual_nodes(n, pod)
        network = AGENT_DAEMONSETS.get(name)
        if network == "host":
            if pod.get("hostNetwork") is not True:
                out.append(f"{n}: hostNetwork is not true")
            if pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
                out.append(f"{n}: dnsPolicy is not ClusterFirstWithHostNet")
        elif network == "pod" and pod.get("hostNetwork"):
            out.append(f"{n}: the pod-network agent uses hostNetwork")
        for c in pod.get("containers") or []:
            cn = f"{n} container {c.get('name')}"
            caps = (c.get("securityContext") or {}).get("capabilities") or {}
            if {cap_name(x) for x in caps.get("add") or []} != AGENT_CAPS:
                out.append(f"{cn}: must add exactly NET_RAW for raw ICMP sockets")
            env = {e["name"]: e for e in c.get("env") or []}
            if network and env.get("ECHOMESH_NETWORK", {}).get("value") != network:
                out.append(f"{cn}: ECHOMESH_NETWORK is not {network!r}")
            for var, path in (
                ("ECHOMESH_NODE", "spec.nodeName"),
                ("ECHOMESH_POD", "metadata.name"),
                ("ECHOMESH_ADDRESS", "status.podIP"),
            ):
                got = env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                if got != path:
                    out.append(f"{cn}: {var} should come from the downward API {path}, got {got}")
            if env.get("ECHOMESH_HTTP_LISTEN", {}).get("value") != AGENT_LISTEN:
                out.append(f"{cn}: ECHOMESH_HTTP_LISTEN is not {AGENT_LISTEN!r} (both address families)")
            url = env.get("ECHOMESH_AGGREGATOR", {}).get("value", "")
            scheme = "https" if uses_tls(objs) else "http"
            if url != f"{scheme}://{AGGREGATOR}.{NAMESPACE}.svc:{GRPC_PORT}":
                out.append(f"{cn}: ECHOMESH_AGGREGATOR {url!r} is not the aggregator Service's gRPC port")
            if AGENT_PORT not in {p.get("containerPort") for p in c.get("ports") or []}:
                out.append(f"{cn}: no metrics port {AGENT_PORT}")
            limits = (c.get("resources") or {}).get("limits") or {}
            try:
                if "cpu" in limits and quantity(limits["cpu"]) * 1000 > AGENT_MAX_CPU_MILLI:
                    out.append(f"{cn}: cpu limit {limits['cpu']} is not small (max {AGENT_MAX_CPU_MILLI}m)")
                if "memory" in limits and quantity(limits["memory"]) > AGENT_MAX_MEMORY:
                    out.append(f"{cn}: memory limit {limits['memory']} is not small (max 256Mi)")
            except ValueError as e:
                out.append(f"{cn}: {e}")
    for name, ds in daemonsets.items():
        out += check_agent_token(name_of(ds), pod_spec(ds))
    sa = find(objs, "ServiceAccount", "echomesh-agent")
    if not sa or sa[0].get("automountServiceAccountToken") is not False:
        out.append("ServiceAccount/echomesh-agent: missing or automountServiceAccountToken is not false")
    return out


def check_agent_token(n: str, pod: Obj) -> list[str]:
    """The projected ServiceAccount token the agent proves itself with: audience echomesh, at most an
    hour, mounted read-only where ECHOMESH_AGENT_TOKEN_FILE points."""
    out = []
    volumes = {}
    for v in pod.get("volumes") or []:
        for src in (v.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in src:
                volumes[v["name"]] = src["serviceAccountToken"]
    if len(volumes) != 1:
        return [f"{n}: want one projected serviceAccountToken volume (agent authentication), have {len(volumes)}"]
    (vname, tok), = volumes.items()
    if tok.get("audience") != AGENT_TOKEN_AUDIENCE:
        out.append(f"{n}: projected token audience is {tok.get('audience')!r}, not {AGENT_TOKEN_AUDIENCE!r}")
    if not isinstance(tok.get("expirationSeconds"), int) or tok["expirationSeconds"] > AGENT_TOKEN_MAX_SECONDS:
        out.append(f"{n}: projected token expirationSeconds must be at most {AGENT_TOKEN_MAX_SECONDS}")
    for c in pod.get("containers") or []:
        cn = f"{n} container {c.get('name')}"
        mounts = [m for m in c.get("volumeMounts") or [] if m.get("name") == vname]
        if len(mounts) != 1 or mounts[0].get("readOnly") is not True:
            out.append(f"{cn}: mount the projected token read-only once")
            continue
        want = f"{mounts[0]['mountPath']}/{tok.get('path')}"
        env = {e["name"]: e for e in c.get("env") or []}
        got = env.get("ECHOMESH_AGENT_TOKEN_FILE", {}).get("value")
        if got != want:
            out.append(f"{cn}: ECHOMESH_AGENT_TOKEN_FILE is {got!r}, not the projected token {want!r}")
    return out


def check_virtual_nodes(n: str, pod: Obj) -> list[str]:
    """Every required node-affinity term must keep the agent off each kind of virtual node."""
    terms = (
        ((pod.get("affinity") or {}).get("nodeAffinity") or {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms")
    ) or []
    if not terms:
        return [f"{n}: no required node affinity keeping agents off virtual nodes"]
    out = []
    for i, term in enumerate(terms):
        excluded = {
            (e.get("key"), v)
            for e in term.get("matchExpressions") or []
            if e.get("operator") == "NotIn"
            for v in e.get("values") or []
        }
        if missing := VIRTUAL_NODE_LABELS - excluded:
            out.append(f"{n}: node affinity term {i} does not exclude virtual nodes {sorted(missing)}")
    return out


def check_aggregator(objs: list[Obj]) -> list[str]:
    deployments = find(objs, "Deployment", AGGREGATOR)
    if len(deployments) != 1:
        return [f"Deployment/{AGGREGATOR}: want exactly one, have {len(deployments)}"]
    dep = deployments[0]
    out, n, pod = check_pod_security(dep, set()), name_of(dep), pod_spec(dep)
    if pod.get("serviceAccountName") != AGGREGATOR:
        out.append(f"{n}: serviceAccountName is not {AGGREGATOR}")
    for c in pod.get("containers") or []:
        cn = f"{n} container {c.get('name')}"
        if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False:
            out.append(f"{cn}: allowPrivilegeEscalation is not false")
        for probe in ("livenessProbe", "readinessProbe"):
            if uses_tls(objs):
                # The kubelet's gRPC probe cannot speak TLS: /healthz on the HTTP port instead.
                get = (c.get(probe) or {}).get("httpGet") or {}
                if get.get("path") != "/healthz" or get.get("port") not in ("http", HTTP_PORT):
                    out.append(f"{cn}: {probe} is not /healthz on the HTTP port (TLS on gRPC)")
                continue
            port = ((c.get(probe) or {}).get("grpc") or {}).get("port")
            if port != GRPC_PORT:
                out.append(f"{cn}: {probe} is not a gRPC health probe on port {GRPC_PORT}")
        if "--kubernetes" not in (c.get("args") or []) + (c.get("command") or []):
            out.append(f"{cn}: not started with --kubernetes")
        env = {e["name"]: e for e in c.get("env") or []}
        selector = dict(
            pair.split("=", 1)
            for pair in str(env.get("ECHOMESH_AGENT_SELECTOR", {}).get("value", "")).split(",")
            if "=" in pair
        )
        for ds in find(objs, "DaemonSet"):
            if not selects(selector, ds["spec"]["template"]["metadata"].get("labels")):
                out.append(
                    f"{cn}: ECHOMESH_AGENT_SELECTOR {selector} does not select the pods of {name_of(ds)}"
                )
        for var, want in LISTEN.items():
            if env.get(var, {}).get("value") != want:
                out.append(f"{cn}: {var} is not {want!r} (both address families)")
        if env.get("ECHOMESH_AGENT_TOKEN_REVIEW", {}).get("value") != "true":
            out.append(f"{cn}: ECHOMESH_AGENT_TOKEN_REVIEW is not \"true\" (agents would not be authenticated)")
        ns_ref = env.get("ECHOMESH_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if ns_ref != "metadata.namespace":
            out.append(f"{cn}: ECHOMESH_NAMESPACE should come from the downward API metadata.namespace")
    return out


def uses_tls(objs: list[Obj]) -> bool:
    """The render serves gRPC over TLS (components/tls): the aggregator has ECHOMESH_TLS_CERT."""
    return any(
        e.get("name") == "ECHOMESH_TLS_CERT"
        for d in find(objs, "Deployment", AGGREGATOR)
        for c in pod_spec(d).get("containers") or []
        for e in c.get("env") or []
    )


def check_tls(objs: list[Obj]) -> list[str]:
    """With TLS: the aggregator's certificate and key come read-only from a Secret; every agent
    dials https:// and checks against ca.crt, mounted without the key."""
    if not uses_tls(objs):
        return []
    out = []
    for d in find(objs, "Deployment", AGGREGATOR):
        pod, n = pod_spec(d), name_of(d)
        secrets = {v["name"]: v["secret"] for v in pod.get("volumes") or [] if "secret" in v}
        for c in pod.get("containers") or []:
            env = {e["name"]: e.get("value", "") for e in c.get("env") or []}
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
            for var in ("ECHOMESH_TLS_CERT", "ECHOMESH_TLS_KEY"):
                path = env.get(var, "")
                m = mounts.get(path.rsplit("/", 1)[0])
                if not m or m.get("name") not in secrets or m.get("readOnly") is not True:
                    out.append(f"{n}: {var} {path!r} is not in a read-only Secret volume")
            for v in secrets.values():
                if (v.get("defaultMode") or 0o644) & 0o007:
                    out.append(f"{n}: TLS Secret volume readable by others (defaultMode {oct(v.get('defaultMode') or 0o644)})")
    for ds in find(objs, "DaemonSet"):
        pod, n = pod_spec(ds), name_of(ds)
        for v in pod.get("volumes") or []:
            items = {i.get("key") for i in (v.get("secret") or {}).get("items") or []}
            if "secret" in v and (not items or items - {"ca.crt"}):
                out.append(f"{n}: mounts Secret {v['secret'].get('secretName')} beyond ca.crt (agents must never see the key)")
        for c in pod.get("containers") or []:
            env = {e["name"]: e.get("value", "") for e in c.get("env") or []}
            if not env.get("ECHOMESH_TLS_CA", "").endswith("/ca.crt"):
                out.append(f"{n}: ECHOMESH_TLS_CA does not point at the mounted ca.crt")
    return out


def check_wiring(objs: list[Obj]) -> list[str]:
    out = []
    for obj in objs:
        ns = obj.get("metadata", {}).get("namespace")
        if obj.get("kind") in CLUSTER_SCOPED:
            if ns:
                out.append(f"{name_of(obj)}: cluster-scoped object has a namespace")
        elif ns != NAMESPACE:
            out.append(f"{name_of(obj)}: namespace is {ns!r}, not {NAMESPACE!r}")
    workloads = find(objs, "Deployment") + find(objs, "DaemonSet")
    for w in workloads:
        labels = w["spec"].get("template", {}).get("metadata", {}).get("labels")
        if not selects(w["spec"].get("selector", {}).get("matchLabels"), labels):
            out.append(f"{name_of(w)}: selector does not match its pod template labels")
    for a in workloads:
        for b in workloads:
            if a is not b and selects(
                a["spec"]["selector"].get("matchLabels"), b["spec"]["template"]["metadata"].get("labels")
            ):
                out.append(f"{name_of(a)}: selector also selects the pods of {name_of(b)}")
    agg = find(objs, "Deployment", AGGREGATOR)
    agg_labels = agg[0]["spec"]["template"]["metadata"].get("labels") if agg else {}
    agg_ports = {
        p.get("name"): p.get("containerPort")
        for c in (pod_spec(agg[0]).get("containers") if agg else [])
        for p in c.get("ports") or []
    }
    svc = find(objs, "Service", AGGREGATOR)
    if not svc:
        out.append(f"Service/{AGGREGATOR}: missing")
    else:
        if not selects(svc[0]["spec"].get("selector"), agg_labels):
            out.append(f"Service/{AGGREGATOR}: selector does not select the aggregator pods")
        if svc[0]["spec"].get("ipFamilyPolicy") != "PreferDualStack":
            out.append(f"Service/{AGGREGATOR}: ipFamilyPolicy is not PreferDualStack")
        ports = {p.get("port"): p.get("targetPort") for p in svc[0]["spec"].get("ports") or []}
        for port in (GRPC_PORT, HTTP_PORT):
            target = ports.get(port)
            if target is None or (target not in agg_ports and target not in agg_ports.values()):
                out.append(f"Service/{AGGREGATOR}: port {port} does not reach a container port")
    pdbs = find(objs, "PodDisruptionBudget")
    if not any(selects(p["spec"].get("selector", {}).get("matchLabels"), agg_labels) for p in pdbs):
        out.append("PodDisruptionBudget: none selects the aggregator")
    return out


def _policy_rules(policy: Obj, direction: str) -> list[Obj]:
    return policy["spec"].get("egress" if direction == "Egress" else "ingress") or []


def check_policy_choice(objs: list[Obj], profile: str | None) -> list[str]:
    """The render carries exactly the policy kind its entry point chose (None: whatever it has)."""
    if profile is None:
        return []
    kinds = {o["kind"] for o in objs if o.get("kind") in POLICY_KINDS}
    want = {"none": set(), "standard": {"NetworkPolicy"}, "cilium": {"CiliumNetworkPolicy"}}[profile]
    if kinds != want:
        return [f"policy choice {profile!r}: expects {sorted(want) or 'no policy'}, render has {sorted(kinds) or 'none'}"]
    return []


def _cidr_problem(cidr: Any) -> str | None:
    import ipaddress

    if cidr == CIDR_PLACEHOLDER:
        return f"placeholder {CIDR_PLACEHOLDER} left: the echomesh-cidrs replacement did not reach it"
    try:
        ipaddress.ip_network(str(cidr), strict=True)
    except ValueError as e:
        return f"{cidr!r} is not a valid CIDR ({e})"
    return None


def check_network_policy(objs: list[Obj], cidrs: set[str] | None = None) -> list[str]:
    """Agents' egress: the aggregator's gRPC port, DNS, and all protocols (ICMP) only to named peers.
    With `cidrs` (the entry point's echomesh-cidrs), every ipBlock must be one of them."""
    out = []
    policies = find(objs, "NetworkPolicy")
    if not policies:
        return out  # no standard policy in this render: check_policy_choice says whether that is right
    agent_pod_labels = {
        "app.kubernetes.io/name": "echomesh-agent",
        "app.kubernetes.io/component": "agent-pod",
    }
    agent_egress = [
        p
        for p in policies
        if "Egress" in p["spec"].get("policyTypes", [])
        and selects(p["spec"].get("podSelector", {}).get("matchLabels"), agent_pod_labels)
    ]
    agg_labels = {"app.kubernetes.io/name": AGGREGATOR}
    agg_ingress = [
        p
        for p in policies
        if "Ingress" in p["spec"].get("policyTypes", [])
        and selects(p["spec"].get("podSelector", {}).get("matchLabels"), agg_labels)
    ]
    if not agent_egress:
        out.append("NetworkPolicy: no egress policy selects the pod-network agents")
    if not agg_ingress:
        out.append("NetworkPolicy: no ingress policy selects the aggregator")
    for policy, direction, peer_key, allowed_ports in (
        *((p, "Egress", "to", {(GRPC_PORT, "TCP"), (53, "UDP"), (53, "TCP")}) for p in agent_egress),
        *((p, "Ingress", "from", {(GRPC_PORT, "TCP"), (HTTP_PORT, "TCP")}) for p in agg_ingress),
    ):
        for i, rule in enumerate(_policy_rules(policy, direction)):
            where = f"{name_of(policy)} {direction.lower()} rule {i}"
            ports = rule.get("ports")
            peers = rule.get(peer_key)
            if not ports and not peers:
                out.append(f"{where}: allows everything (no peers, no ports)")
            for p in ports or []:
                if (p.get("port"), p.get("protocol", "TCP")) not in allowed_ports or p.get("endPort"):
                    out.append(f"{where}: opens {p.get('protocol', 'TCP')} {p.get('port')}")
            for peer in peers or []:
                cidr = (peer.get("ipBlock") or {}).get("cidr")
                if cidr in ("0.0.0.0/0", "::/0"):
                    out.append(f"{where}: opens to the whole internet ({cidr})")
                elif cidr is not None and (problem := _cidr_problem(cidr)):
                    out.append(f"{where}: {problem}")
                elif cidr is not None and cidrs is not None and cidr not in cidrs:
                    out.append(f"{where}: {cidr} is not in echomesh-cidrs {sorted(cidrs)}")
                if (
                    direction == "Egress"
                    and peer.get("namespaceSelector") is not None
                    and not peer.get("podSelector")
                ):
                    out.append(f"{where}: opens to every pod of selected namespaces")
            if direction == "Ingress":
                out += _check_ingress_peers(where, rule)
    return out


def _check_ingress_peers(where: str, rule: Obj) -> list[str]:
    """gRPC only from agent pods (podSelector) and ipBlocks (node and overlay CIDRs); HTTP only from
    named namespaces (the monitoring namespace), never from every namespace."""
    out = []
    ports = {p.get("port") for p in rule.get("ports") or []}
    for peer in rule.get("from") or []:
        ns, pods = peer.get("namespaceSelector"), peer.get("podSelector")
        if GRPC_PORT in ports:
            agent = (pods or {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "echomesh-agent"
            if ns is not None or (pods is not None and not agent) or (pods is None and "ipBlock" not in peer):
                out.append(f"{where}: gRPC {GRPC_PORT} from {peer}; only agent pods and node/pod CIDRs may connect")
        if HTTP_PORT in ports:
            labels = (ns or {}).get("matchLabels") or {}
            if ns is None or not labels or (ns or {}).get("matchExpressions"):
                out.append(f"{where}: HTTP {HTTP_PORT} from {peer}; name the monitoring namespace")
            elif "placeholder-monitoring-namespace" in labels.values():
                out.append(f"{where}: the monitoring namespace placeholder survived (set spec.monitoring)")
    return out


ICMP_ECHO = {("IPv4", "8"), ("IPv4", "EchoRequest"), ("IPv4", "Echo"), ("IPv6", "128"), ("IPv6", "EchoRequest")}
NODE_ENTITIES = {"host", "remote-node"}


def _strict(schema: Any) -> Any:
    """The CRD schema as the API server's strict field validation applies it: unknown fields in an
    object with declared properties are errors (jsonschema alone would ignore them)."""
    if isinstance(schema, dict):
        # anyOf/oneOf/allOf/not only constrain values in a structural schema (what a field must look
        # like), they declare no fields: leave them open.
        schema = {k: v if k in ("anyOf", "oneOf", "allOf", "not") else _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def cilium_schema() -> Obj | None:
    """openAPIV3Schema of cilium.io/v2 CiliumNetworkPolicy from the vendored CRD, or None."""
    if not CILIUM_CRD_FILE.exists():
        return None
    crd = yaml.safe_load(CILIUM_CRD_FILE.read_text())
    for version in crd["spec"]["versions"]:
        if version["name"] == "v2":
            return _strict(version["schema"]["openAPIV3Schema"])
    return None


def check_cilium_policy(objs: list[Obj]) -> list[str]:
    """CiliumNetworkPolicies: valid against Cilium's CRD schema; pod agents reach nodes through the
    host and remote-node entities with ICMP echo only; the aggregator admits those entities on gRPC."""
    policies = find(objs, "CiliumNetworkPolicy")
    if not policies:
        return []
    import jsonschema

    out = []
    schema = cilium_schema()
    if schema is None:
        out.append(f"{CILIUM_CRD_FILE.relative_to(DEPLOY.parent)}: missing; cannot validate CiliumNetworkPolicy")
    for pol in policies:
        n = name_of(pol)
        if pol.get("apiVersion") != "cilium.io/v2":
            out.append(f"{n}: apiVersion is not cilium.io/v2")
        if schema is not None:
            validator = jsonschema.Draft7Validator(schema)
            for err in sorted(validator.iter_errors(pol), key=lambda e: list(e.path)):
                path = ".".join(str(p) for p in err.path)
                out.append(f"{n}: invalid against the Cilium CRD schema at {path or '<root>'}: {err.message}")
        spec = pol.get("spec") or {}
        for direction, entities_key, allowed_ports in (
            ("egress", "toEntities", {("7070", "TCP"), ("53", "UDP"), ("53", "TCP")}),
            ("ingress", "fromEntities", {("7070", "TCP"), ("7071", "TCP")}),
        ):
            for i, rule in enumerate(spec.get(direction) or []):
                where = f"{n} {direction} rule {i}"
                for ent in rule.get(entities_key) or []:
                    if ent not in NODE_ENTITIES:
                        out.append(f"{where}: entity {ent!r} (only host and remote-node: node addresses)")
                for key in ("toCIDR", "fromCIDR", "toCIDRSet", "fromCIDRSet", "toFQDNs", "toServices"):
                    if rule.get(key):
                        out.append(f"{where}: {key} is not used by echomesh (nodes are entities)")
                ports = [p for tp in rule.get("toPorts") or [] for p in tp.get("ports") or []]
                for p in ports:
                    if (str(p.get("port")), p.get("protocol", "ANY")) not in allowed_ports or p.get("endPort"):
                        out.append(f"{where}: opens {p.get('protocol', 'ANY')} {p.get('port')}")
                for icmp in rule.get("icmps") or []:
                    for f in icmp.get("fields") or []:
                        if (f.get("family", "IPv4"), str(f.get("type"))) not in ICMP_ECHO:
                            out.append(f"{where}: ICMP {f.get('family', 'IPv4')} type {f.get('type')} is not echo request")
                if not ports and not rule.get("icmps"):
                    out.append(f"{where}: allows every protocol (no toPorts, no icmps)")
                if direction == "ingress" and any(str(p.get("port")) == str(HTTP_PORT) for p in ports):
                    for ep in rule.get("fromEndpoints") or [{}]:
                        if not (ep.get("matchLabels") or {}).get("k8s:io.kubernetes.pod.namespace"):
                            out.append(f"{where}: HTTP {HTTP_PORT} from {ep}; name the monitoring namespace")
    pod_sel = {"app.kubernetes.io/name": "echomesh-agent", "app.kubernetes.io/component": "agent-pod"}
    egress = [p for p in policies if selects((p["spec"].get("endpointSelector") or {}).get("matchLabels"), pod_sel)]
    if not any(
        NODE_ENTITIES <= set(r.get("toEntities") or []) and r.get("icmps")
        for p in egress
        for r in p["spec"].get("egress") or []
    ):
        out.append("CiliumNetworkPolicy: pod-network agents may not send ICMP echo to the host and remote-node entities")
    agg = [
        p
        for p in policies
        if selects((p["spec"].get("endpointSelector") or {}).get("matchLabels"), {"app.kubernetes.io/name": AGGREGATOR})
    ]
    if not any(
        NODE_ENTITIES <= set(r.get("fromEntities") or [])
        and any(str(pp.get("port")) == str(GRPC_PORT) for tp in r.get("toPorts") or [] for pp in tp.get("ports") or [])
        for p in agg
        for r in p["spec"].get("ingress") or []
    ):
        out.append("CiliumNetworkPolicy: the aggregator does not admit host and remote-node (host-network agents) on gRPC")
    return out


def check_openshift(objs: list[Obj], required: bool = False) -> list[str]:
    """The agents' SCC: NET_RAW and hostNetwork, uid 65532, read-only, nothing else; usable via RBAC only."""
    sccs = find(objs, "SecurityContextConstraints")
    if not sccs:
        return ["SecurityContextConstraints/echomesh-agent: missing"] if required else []
    out = []
    uids = {
        effective(pod_spec(d), c, "runAsUser")
        for d in find(objs, "DaemonSet")
        for c in pod_spec(d).get("containers") or []
    }
    for scc in sccs:
        n = name_of(scc)
        if scc.get("apiVersion") != "security.openshift.io/v1":
            out.append(f"{n}: apiVersion is not security.openshift.io/v1")
        caps = {cap_name(c) for c in scc.get("allowedCapabilities") or []}
        if caps != AGENT_CAPS:
            out.append(f"{n}: allowedCapabilities {sorted(caps)}; want exactly NET_RAW")
        if scc.get("defaultAddCapabilities"):
            out.append(f"{n}: defaultAddCapabilities adds capabilities to every pod using it")
        if "ALL" not in {cap_name(c) for c in scc.get("requiredDropCapabilities") or []}:
            out.append(f"{n}: requiredDropCapabilities does not drop ALL")
        for flag in ("allowPrivilegedContainer", "allowHostPID", "allowHostIPC", "allowHostDirVolumePlugin"):
            if scc.get(flag) is not False:
                out.append(f"{n}: {flag} is not false (privileged or host namespaces beyond the network)")
        if scc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{n}: readOnlyRootFilesystem is not true")
        if scc.get("users") or scc.get("groups"):
            out.append(f"{n}: granted to users/groups directly; grant it through a RoleBinding only")
        if bad := set(scc.get("volumes") or []) - {"emptyDir"}:
            out.append(f"{n}: volumes beyond emptyDir: {sorted(bad)}")
        if (scc.get("seccompProfiles") or []) != ["runtime/default"]:
            out.append(f"{n}: seccompProfiles is not [runtime/default]")
        run_as = scc.get("runAsUser") or {}
        if run_as.get("type") != "MustRunAs" or run_as.get("uid") not in uids or 0 in uids:
            out.append(f"{n}: runAsUser {run_as} does not pin the agents' uid {sorted(u for u in uids if u is not None)}")
    return out


def check_monitoring(objs: list[Obj]) -> list[str]:
    out = []
    for obj in objs:
        if obj.get("kind") in MONITORING_KINDS and obj.get("apiVersion") != "monitoring.coreos.com/v1":
            out.append(f"{name_of(obj)}: apiVersion is not monitoring.coreos.com/v1")
    svc = find(objs, "Service", AGGREGATOR)
    for sm in find(objs, "ServiceMonitor"):
        spec = sm.get("spec", {})
        if not svc or not selects(
            spec.get("selector", {}).get("matchLabels"), svc[0]["metadata"].get("labels")
        ):
            out.append(f"{name_of(sm)}: selector does not select Service/{AGGREGATOR}")
        names = {p.get("name") for p in (svc[0]["spec"].get("ports") if svc else [])}
        for ep in spec.get("endpoints") or [{}]:
            if ep.get("port") not in names:
                out.append(f"{name_of(sm)}: endpoint port {ep.get('port')!r} is not a Service port name")
    agents = [d for d in find(objs, "DaemonSet") if d["metadata"]["name"] in AGENT_DAEMONSETS]
    for pm in find(objs, "PodMonitor"):
        spec = pm.get("spec", {})
        for d in agents:
            if not selects(
                spec.get("selector", {}).get("matchLabels"), d["spec"]["template"]["metadata"].get("labels")
            ):
                out.append(f"{name_of(pm)}: selector does not select the pods of {name_of(d)}")
            names = {p.get("name") for c in pod_spec(d).get("containers") or [] for p in c.get("ports") or []}
            for ep in spec.get("podMetricsEndpoints") or [{}]:
                if ep.get("port") not in names:
                    out.append(f"{name_of(pm)}: port {ep.get('port')!r} is not a port of {name_of(d)}")
    rules = find(objs, "PrometheusRule")
    if rules:
        try:
            want = yaml.safe_load(RULES_FILE.read_text())
        except (OSError, yaml.YAMLError) as e:
            return out + [f"{RULES_FILE}: {e}"]
        for pr in rules:
            if pr.get("spec") != want:
                out.append(
                    f"{name_of(pr)}: differs from {RULES_FILE.name}; run deploy/validate.sh --sync-rules"
                )
            out += check_rule_groups(pr.get("spec", {}), name_of(pr))
        out += check_dashboard_configmap(objs)
    return out


def check_dashboard_configmap(objs: list[Obj]) -> list[str]:
    """With the monitoring component, the dashboard ConfigMap is there, labelled for the Grafana
    sidecar, and carries exactly dashboards/echomesh.json."""
    cms = find(objs, "ConfigMap", DASHBOARD_CONFIGMAP)
    if len(cms) != 1:
        return [f"ConfigMap/{DASHBOARD_CONFIGMAP}: want one in the monitoring render, have {len(cms)}"]
    cm, out = cms[0], []
    if (cm["metadata"].get("labels") or {}).get("grafana_dashboard") != "1":
        out.append(f"{name_of(cm)}: no label grafana_dashboard: \"1\" (the Grafana sidecar would skip it)")
    data = cm.get("data") or {}
    if set(data) != {DASHBOARD_FILE.name}:
        out.append(f"{name_of(cm)}: data keys {sorted(data)}, want [{DASHBOARD_FILE.name!r}]")
    else:
        try:
            if json.loads(data[DASHBOARD_FILE.name]) != json.loads(DASHBOARD_FILE.read_text()):
                out.append(f"{name_of(cm)}: differs from {DASHBOARD_FILE.name}")
        except (OSError, ValueError) as e:
            out.append(f"{name_of(cm)}: dashboard is not valid JSON: {e}")
    return out


def check_rule_groups(spec: Obj, where: str) -> list[str]:
    out, seen = [], set()
    exported = exported_series()
    for group in spec.get("groups") or []:
        for rule in group.get("rules") or []:
            if record := rule.get("record"):
                m = RECORD_NAME.fullmatch(str(record))
                if not m or str(record).startswith("echomesh_"):
                    out.append(f"{where} {record}: a recording rule is named level:metric:operations")
                elif m.group(1) not in exported:
                    out.append(
                        f"{where} {record}: its metric part {m.group(1)} is not an exported series "
                        f"({METRICS_DOC.name})"
                    )
                if not rule.get("expr") or "alert" in rule or "for" in rule:
                    out.append(f"{where} {record}: a recording rule has an expr and no alert or for")
                continue
            alert = rule.get("alert")
            if not alert:
                continue
            seen.add(alert)
            if not rule.get("expr") or not rule.get("for"):
                out.append(f"{where} {alert}: needs expr and for")
            if (rule.get("labels") or {}).get("severity") not in SEVERITIES:
                out.append(f"{where} {alert}: severity label not one of {sorted(SEVERITIES)}")
            missing = {"summary", "description", "runbook"} - set(rule.get("annotations") or {})
            if missing:
                out.append(f"{where} {alert}: annotations missing {sorted(missing)}")
    if missing := REQUIRED_ALERTS - seen:
        out.append(f"{where}: alerts missing: {sorted(missing)}")
    return out


# -------------------------------------------------------------------------------------- dashboard

_EXPORTED: set[str] = set()


def exported_series(doc: str | None = None) -> set[str]:
    """Every series name the metric tables of docs/metrics.md list (aggregator and agent), with a
    histogram's _bucket, _sum and _count. aggregator/tests/metrics.rs checks the rules' and the
    dashboard's names against a real scrape; this is the same list offline."""
    if doc is None and _EXPORTED:
        return _EXPORTED
    text = METRICS_DOC.read_text() if doc is None else doc
    names = set()
    for m in re.finditer(r"(?m)^\| `(echomesh_[a-z0-9_]+)` \| ([a-z]+)", text):
        names.add(m.group(1))
        if m.group(2) == "histogram":
            names |= {m.group(1) + suffix for suffix in ("_bucket", "_sum", "_count")}
    if doc is None:
        _EXPORTED.update(names)
    return names


def recorded_series(rules: Obj) -> set[str]:
    return {r["record"] for g in rules.get("groups") or [] for r in g.get("rules") or [] if r.get("record")}


_GRAFANA_INTERVALS = {"rate_interval": "5m", "interval": "1m", "range": "1h"}


def grafana_to_promql(expr: str) -> str:
    """A panel query with Grafana's variables replaced by plain values, so promtool can parse it."""
    expr = re.sub(
        r"\$\{__(\w+)\}|\$__(\w+)",
        lambda m: _GRAFANA_INTERVALS.get(m.group(1) or m.group(2), "x"),
        expr,
    )
    return re.sub(r"\$\{\w+(?::[^}]*)?\}|\$\w+|\[\[\w+\]\]", "x", expr)


_PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside strings, label matchers,
    ranges and grouping clauses that are not functions, keywords or numbers."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", s):
        if s[m.end():].lstrip().startswith("(") or m.group(0).lower() in _PROMQL_WORDS:
            continue
        names.add(m.group(0))
    return names


def _panels(panels: list[Any]) -> Iterable[Obj]:
    for p in panels:
        if isinstance(p, dict):
            yield p
            yield from _panels(p.get("panels") or [])


def dashboard_queries(dash: Obj) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    out = []
    for p in _panels(dash.get("panels") or []):
        for t in p.get("targets") or []:
            if isinstance(t, dict) and t.get("expr"):
                out.append((f"panel {p.get('title')!r} target {t.get('refId')}", str(t["expr"])))
    for v in (dash.get("templating") or {}).get("list") or []:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = str(q.get("query", "")) if isinstance(q, dict) else str(q or "")
        where = f"variable {v.get('name')!r}"
        if m := re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", q, re.DOTALL):
            out.append((where, m.group(1)))
        elif m := re.fullmatch(r"\s*query_result\((.*)\)\s*", q, re.DOTALL):
            out.append((where, m.group(1)))
        elif q.strip() and not re.fullmatch(r"\s*(label_names|label_values|metrics)\(.*\)\s*", q, re.DOTALL):
            out.append((where, q))
    return out


def check_dashboard(dash: Any, exported: set[str], recorded: set[str]) -> list[str]:
    """The fields Grafana needs, the variables and datasource wiring, and only known series."""
    f = DASHBOARD_FILE.name
    if not isinstance(dash, dict):
        return [f"{f}: not a JSON object"]
    out = []
    if not isinstance(dash.get("title"), str) or not dash["title"].strip():
        out.append(f"{f}: no title")
    uid = dash.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        out.append(f"{f}: uid {uid!r} is not 1..40 of [A-Za-z0-9_-]")
    if not isinstance(dash.get("schemaVersion"), int):
        out.append(f"{f}: no integer schemaVersion")
    templating = dash.get("templating")
    variables = templating.get("list") if isinstance(templating, dict) else None
    if not isinstance(variables, list):
        out.append(f"{f}: no templating.list")
        variables = []
    by_name = {v.get("name"): v for v in variables if isinstance(v, dict)}
    ds = by_name.get("datasource") or {}
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        out.append(f"{f}: no Prometheus datasource variable named datasource")
    for name in ("node", "network"):
        if (by_name.get(name) or {}).get("type") != "query":
            out.append(f"{f}: no query variable {name}")
    panels = dash.get("panels")
    if not isinstance(panels, list) or not panels:
        out.append(f"{f}: no panels")
        panels = []
    ids = []
    for p in _panels(panels):
        where = f"{f} panel {p.get('title')!r}"
        ids.append(p.get("id"))
        if not isinstance(p.get("type"), str) or not p["type"]:
            out.append(f"{where}: no type")
        g = p.get("gridPos")
        if not isinstance(g, dict) or not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")):
            out.append(f"{where}: gridPos needs integer h, w, x, y")
        elif g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24:
            out.append(f"{where}: gridPos x={g['x']} w={g['w']} is outside the 24-column grid")
        if p.get("type") == "row":
            continue
        targets = p.get("targets")
        if not isinstance(targets, list) or not targets:
            out.append(f"{where}: no targets")
            continue
        for t in targets:
            if not isinstance(t, dict) or not t.get("expr") or not t.get("refId"):
                out.append(f"{where}: a target without expr or refId")
        for d in [p.get("datasource")] + [t.get("datasource") for t in targets if isinstance(t, dict)]:
            if not isinstance(d, dict) or d.get("uid") not in ("${datasource}", "$datasource"):
                out.append(f"{where}: datasource {d!r} is not the datasource variable")
                break
    if len(ids) != len(set(ids)) or None in ids:
        out.append(f"{f}: panel ids are missing or not unique")
    used = set()
    for where, expr in dashboard_queries(dash):
        for name in promql_metric_names(grafana_to_promql(expr)):
            used.add(name)
            if name not in exported and name not in recorded:
                out.append(
                    f"{f} {where}: unknown series {name}: neither exported ({METRICS_DOC.name}) "
                    f"nor recorded in {RULES_FILE.name}"
                )
    if missing := DASHBOARD_REQUIRED - used:
        out.append(f"{f}: no panel shows {sorted(missing)}")
    return out


def check_promql(promtool: str, queries: list[tuple[str, str]]) -> list[str]:
    """Every query parses: each goes through a throwaway rule file and `promtool check rules`."""
    import tempfile

    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}:check", "expr": grafana_to_promql(q)}
                    for i, (_, q) in enumerate(queries)
                ],
            }
        ]
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboard-rules.yaml"
        path.write_text(yaml.safe_dump(rules, sort_keys=False))
        try:
            res = subprocess.run(
                [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ToolError(f"promtool check rules (dashboard queries): {e}") from e
    if res.returncode == 0:
        return []
    report = (res.stdout + res.stderr).strip()
    out = []
    for i, (where, q) in enumerate(queries):
        for line in report.splitlines():
            marker = f'"dashboard:query_{i}:check": '
            if marker in line:
                out.append(f"{DASHBOARD_FILE.name} {where}: PromQL does not parse: {line.split(marker, 1)[-1]}")
    return out or [f"{DASHBOARD_FILE.name}: promtool check rules on the dashboard queries failed:\n{report}"]


def load_dashboard() -> tuple[Any, list[str]]:
    try:
        return json.loads(DASHBOARD_FILE.read_text()), []
    except (OSError, ValueError) as e:
        return None, [f"{DASHBOARD_FILE.name}: not valid JSON: {e}"]


def check_dashboard_all(dash: Any, rules: Obj, promtool: str | None) -> list[str]:
    out = check_dashboard(dash, exported_series(), recorded_series(rules))
    if promtool and isinstance(dash, dict):
        out += check_promql(promtool, dashboard_queries(dash))
    return out


def _dashboard_mutations() -> list[tuple[str, str, Callable[[Obj], None]]]:
    """(what, a word the violation must contain, how to break the dashboard)."""

    def first_target(d):
        return next(p for p in _panels(d["panels"]) if p.get("targets"))["targets"][0]

    return [
        ("no uid", "uid", lambda d: d.pop("uid")),
        ("no schemaVersion", "schemaVersion", lambda d: d.pop("schemaVersion")),
        ("no templating", "templating", lambda d: d.pop("templating")),
        ("a panel without gridPos", "gridPos", lambda d: next(_panels(d["panels"])).pop("gridPos")),
        ("a panel without targets", "no targets", lambda d: next(p for p in _panels(d["panels"]) if p.get("targets")).pop("targets")),
        ("a panel wider than the grid", "24-column", lambda d: next(_panels(d["panels"]))["gridPos"].__setitem__("w", 30)),
        ("a misspelt exported series", "echomesh_node_los_ratio", lambda d: first_target(d).__setitem__("expr", "echomesh_node_los_ratio")),
        ("an undefined recording rule", "node:echomesh_node_loss_ratio:avg1h", lambda d: first_target(d).__setitem__("expr", 'node:echomesh_node_loss_ratio:avg1h{node=~"$node"}')),
        ("a query that does not parse", "does not parse", lambda d: first_target(d).__setitem__("expr", "sum(rate(echomesh_edges[$__rate_interval])")),
        ("a hard-coded datasource", "datasource variable", lambda d: next(p for p in _panels(d["panels"]) if p.get("targets")).__setitem__("datasource", {"type": "prometheus", "uid": "PBFA97CFB590B2093"})),
        ("no expected-down panel", "echomesh_node_expected_down", lambda d: d.__setitem__("panels", [p for p in d["panels"] if "echomesh_node_expected_down" not in json.dumps(p)])),
    ]


class Entry:
    """What an entry point promises beyond the common checks."""

    def __init__(self, profile: str | None = None, platform: str | None = None, cidrs: set[str] | None = None):
        self.profile, self.platform, self.cidrs = profile, platform, cidrs


def check_objects(
    objs: list[Obj], schema_versions: Iterable[str] = K8S_VERSIONS, entry: Entry | None = None
) -> list[str]:
    """Every object check over one rendered install (entry: what its entry point promises)."""
    entry = entry or Entry()
    out = check_schema(objs, schema_versions)
    out += check_rbac(objs)
    out += check_agents(objs, pod_network_only=entry.platform == "pod-network-only")
    out += check_aggregator(objs)
    out += check_tls(objs)
    out += check_node_conditions(objs)
    out += check_wiring(objs)
    out += check_policy_choice(objs, entry.profile)
    out += check_network_policy(objs, entry.cidrs)
    out += check_cilium_policy(objs)
    out += check_openshift(objs, required=entry.platform == "openshift")
    out += check_monitoring(objs)
    return out


def check_cidr_families(cidrs: set[str]) -> list[str]:
    import ipaddress

    if {ipaddress.ip_network(c).version for c in cidrs} != {4, 6}:
        return ["cidrs.yaml: the example must list IPv4 and IPv6 CIDRs"]
    return []


def example_cidrs(overlay: Path) -> set[str]:
    """The CIDRs of an overlay's echomesh-cidrs object (what its render's ipBlocks must be)."""
    doc = yaml.safe_load((overlay / "cidrs.yaml").read_text())
    return {p["ipBlock"]["cidr"] for key in ("nodes", "pods") for p in doc["spec"].get(key) or []}


def check_docker_context(repo: Path, ignore_lines: list[str] | None = None) -> list[str]:
    """The Dockerfiles build the cargo workspace from the build context: .dockerignore must keep
    every workspace member (and the root manifest and lockfile) in it."""
    import fnmatch
    import tomllib

    if ignore_lines is None:
        path = repo / ".dockerignore"
        ignore_lines = path.read_text().splitlines() if path.exists() else []
    patterns = [
        ln.strip().strip("/") for ln in ignore_lines if ln.strip() and not ln.lstrip().startswith("#")
    ]
    try:
        members = tomllib.loads((repo / "Cargo.toml").read_text())["workspace"]["members"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        return [f"Cargo.toml: cannot read workspace members: {e}"]
    out = []
    for member in ["Cargo.toml", "Cargo.lock", *members]:
        parts = member.strip("/").split("/")
        # Docker excludes a path when a pattern matches it or any of its parent directories.
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pat in patterns:
            if pat.startswith("!"):
                continue
            if any(fnmatch.fnmatchcase(pre, pat) for pre in prefixes):
                out.append(f".dockerignore: pattern {pat!r} excludes {member}, which the image build needs")
    return out


DOCKERFILES = ("Dockerfile.agent", "Dockerfile.aggregator")
TARGET_ARCHES = ("amd64", "arm64")


def check_dockerfiles(texts: dict[str, str]) -> list[str]:
    """Each Dockerfile: base images pinned by digest, a builder on the build platform that
    cross-compiles for TARGETARCH (amd64 and arm64) with cargo --target."""
    out = []
    for name, text in texts.items():
        lines = text.splitlines()
        images = {}
        for ln in lines:
            if m := re.match(r"\s*ARG\s+(\w*IMAGE)=(\S+)", ln):
                images[m.group(1)] = m.group(2)
        if not images:
            out.append(f"{name}: no ARG ..._IMAGE with the base images")
        for arg, ref in images.items():
            if not re.search(r"@sha256:[0-9a-f]{64}$", ref):
                out.append(f"{name}: {arg}={ref} is not pinned by digest (@sha256:...)")
        stages = set()
        for ln in lines:
            m = re.match(r"\s*FROM\s+(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?", ln, re.IGNORECASE)
            if not m:
                continue
            platform, ref, stage = m.groups()
            if not (ref.startswith("${") or ref in stages):
                out.append(f"{name}: FROM {ref} names an image directly; use a digest-pinned ARG")
            if stage:
                stages.add(stage)
            if stage == "builder" and platform != "$BUILDPLATFORM":
                out.append(f"{name}: the builder stage is not FROM --platform=$BUILDPLATFORM (no cross-compiling)")
        if "builder" not in stages:
            out.append(f"{name}: no builder stage")
        if not re.search(r"^\s*ARG\s+TARGETARCH\s*$", text, re.MULTILINE):
            out.append(f"{name}: no ARG TARGETARCH")
        for arch in TARGET_ARCHES:
            if not re.search(rf"^\s*{arch}\)", text, re.MULTILINE):
                out.append(f"{name}: TARGETARCH {arch} is not mapped to a Rust target")
        if "cargo build" in text and "--target" not in text:
            out.append(f"{name}: cargo build without --target (builds for the build machine only)")
    return out


def read_dockerfiles(repo: Path) -> dict[str, str]:
    return {n: (repo / n).read_text() for n in DOCKERFILES if (repo / n).exists()}


# -------------------------------------------------------------------------------------- self-test


def _agent(objs: list[Obj], name: str = "echomesh-agent-pod") -> Obj:
    return pod_spec(find(objs, "DaemonSet", name)[0])["containers"][0]


MONITORING_ENTRY = "deploy/overlays/monitoring"


def _mutations() -> list[tuple[str, str, Callable[[list[Obj]], None], str]]:
    """(what, a word the violation must contain, how to break the render, which entry point's render)."""

    def role(objs):
        return find(objs, "ClusterRole")[0]["rules"][0]

    def agg(objs):
        return pod_spec(find(objs, "Deployment", AGGREGATOR)[0])["containers"][0]

    def add_debug_init_container(objs):
        pod = pod_spec(find(objs, "DaemonSet", "echomesh-agent-pod")[0])
        debug = copy.deepcopy(pod["containers"][0])
        debug["name"] = "debug"
        debug["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["SYS_PTRACE"]}
        pod.setdefault("initContainers", []).append(debug)

    def agent_egress(objs):
        return find(objs, "NetworkPolicy", "echomesh-agent-pod-egress")[0]["spec"]["egress"]

    def agg_ingress(objs):
        return find(objs, "NetworkPolicy", "echomesh-aggregator-ingress")[0]["spec"]["ingress"]

    def env_of(container, name):
        return next(e for e in container["env"] if e["name"] == name)

    def cnp(objs, name):
        return find(objs, "CiliumNetworkPolicy", name)[0]["spec"]

    def scc(objs):
        return find(objs, "SecurityContextConstraints")[0]

    def add_policy(objs):
        objs.append(copy.deepcopy(find(_RENDERS["deploy/overlays/networkpolicy"], "NetworkPolicy")[0]))

    def affinity_terms(objs):
        pod = pod_spec(find(objs, "DaemonSet", "echomesh-agent-host")[0])
        return pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]

    std, cil, ocp = "deploy/overlays/networkpolicy", "deploy/overlays/cilium", "deploy/overlays/openshift"
    new = [
        # Placement, listeners, Service families, image names (any render).
        (
            "agents without the linux nodeSelector",
            "kubernetes.io/os",
            lambda o: pod_spec(find(o, "DaemonSet", "echomesh-agent-pod")[0]).pop("nodeSelector"),
            MONITORING_ENTRY,
        ),
        (
            "agents allowed onto virtual-kubelet nodes",
            "virtual nodes",
            lambda o: affinity_terms(o)[0].__setitem__(
                "matchExpressions",
                [e for e in affinity_terms(o)[0]["matchExpressions"] if e["key"] != "type"],
            ),
            MONITORING_ENTRY,
        ),
        (
            "agent metrics on IPv4 only",
            "ECHOMESH_HTTP_LISTEN",
            lambda o: env_of(_agent(o), "ECHOMESH_HTTP_LISTEN").__setitem__("value", "0.0.0.0:7072"),
            MONITORING_ENTRY,
        ),
        (
            "aggregator gRPC on IPv4 only",
            "ECHOMESH_GRPC_LISTEN",
            lambda o: env_of(agg(o), "ECHOMESH_GRPC_LISTEN").__setitem__("value", "0.0.0.0:7070"),
            MONITORING_ENTRY,
        ),
        (
            "Service single-stack",
            "PreferDualStack",
            lambda o: find(o, "Service", AGGREGATOR)[0]["spec"].__setitem__("ipFamilyPolicy", "SingleStack"),
            MONITORING_ENTRY,
        ),
        (
            "bare Docker Hub image name",
            "registry host",
            lambda o: _agent(o).__setitem__("image", "echomesh-agent:0.1.0"),
            "deploy",
        ),
        # Policy choice per entry point.
        ("a NetworkPolicy in the no-policy install", "policy choice", add_policy, "deploy"),
        (
            "standard policy component dropped",
            "policy choice",
            lambda o: o.__setitem__(slice(None), [x for x in o if x["kind"] != "NetworkPolicy"]),
            std,
        ),
        # Standard NetworkPolicy with the echomesh-cidrs parameters.
        (
            "agent egress to 443",
            "opens TCP 443",
            lambda o: agent_egress(o).append({"ports": [{"protocol": "TCP", "port": 443}]}),
            std,
        ),
        (
            "agent egress to the internet",
            "internet",
            lambda o: agent_egress(o).append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
            std,
        ),
        (
            "CIDR placeholder left in a policy",
            "placeholder",
            lambda o: agg_ingress(o)[2]["from"][0]["ipBlock"].__setitem__("cidr", CIDR_PLACEHOLDER),
            std,
        ),
        (
            "invalid IPv6 CIDR",
            "not a valid CIDR",
            lambda o: agent_egress(o)[3]["to"][1]["ipBlock"].__setitem__("cidr", "fc00:f853:ccd:e793::1/64"),
            std,
        ),
        (
            "policy CIDR not from echomesh-cidrs",
            "not in echomesh-cidrs",
            lambda o: agent_egress(o)[3]["to"][0]["ipBlock"].__setitem__("cidr", "10.0.0.0/8"),
            std,
        ),
        (
            "aggregator HTTP from every namespace",
            "name the monitoring namespace",
            lambda o: agg_ingress(o)[3]["from"][0].__setitem__("namespaceSelector", {}),
            std,
        ),
        (
            "aggregator gRPC from any pod",
            "only agent pods",
            lambda o: agg_ingress(o)[0]["from"].append({"podSelector": {}}),
            std,
        ),
        (
            "aggregator open to ::/0",
            "internet",
            lambda o: agg_ingress(o)[2]["from"].append({"ipBlock": {"cidr": "::/0"}}),
            std,
        ),
        # CiliumNetworkPolicy: the CRD schema and what the rules allow.
        (
            "CiliumNetworkPolicy unknown field",
            "Cilium CRD schema",
            lambda o: cnp(o, "echomesh-agent-pod-egress")["egress"][3].__setitem__(
                "toEntity", cnp(o, "echomesh-agent-pod-egress")["egress"][3].pop("toEntities")
            ),
            cil,
        ),
        (
            "CiliumNetworkPolicy unknown entity",
            "Cilium CRD schema",
            lambda o: cnp(o, "echomesh-agent-pod-egress")["egress"][3]["toEntities"].append("nodes"),
            cil,
        ),
        (
            "CiliumNetworkPolicy port as a number",
            "Cilium CRD schema",
            lambda o: cnp(o, "echomesh-aggregator-ingress")["ingress"][0]["toPorts"][0]["ports"][0].__setitem__(
                "port", 7070
            ),
            cil,
        ),
        (
            "Cilium agents may reach the world",
            "world",
            lambda o: cnp(o, "echomesh-agent-pod-egress")["egress"][3]["toEntities"].append("world"),
            cil,
        ),
        (
            "Cilium ICMP beyond echo request",
            "not echo request",
            lambda o: cnp(o, "echomesh-agent-pod-egress")["egress"][2]["icmps"][0]["fields"].append(
                {"type": 5, "family": "IPv4"}
            ),
            cil,
        ),
        (
            "Cilium aggregator without remote-node",
            "remote-node",
            lambda o: cnp(o, "echomesh-aggregator-ingress")["ingress"][1].__setitem__("fromEntities", ["host"]),
            cil,
        ),
        (
            "Cilium agent egress to 443",
            "opens TCP 443",
            lambda o: cnp(o, "echomesh-agent-pod-egress")["egress"].append(
                {"toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}
            ),
            cil,
        ),
        (
            "Cilium HTTP from every namespace",
            "name the monitoring namespace",
            lambda o: cnp(o, "echomesh-aggregator-ingress")["ingress"][2]["fromEndpoints"][0]["matchLabels"].pop(
                "k8s:io.kubernetes.pod.namespace"
            ),
            cil,
        ),
        (
            "Cilium agent egress by CIDR",
            "toCIDR",
            lambda o: cnp(o, "echomesh-agent-pod-egress")["egress"][3].__setitem__("toCIDR", ["10.0.0.0/8"]),
            cil,
        ),
        (
            "Cilium rule allowing every protocol",
            "allows every protocol",
            lambda o: cnp(o, "echomesh-agent-pod-egress")["egress"][2].pop("icmps"),
            cil,
        ),
        (
            "Cilium pod agents cannot ping nodes",
            "host and remote-node entities",
            lambda o: cnp(o, "echomesh-agent-pod-egress")["egress"].pop(3),
            cil,
        ),
        # OpenShift SCC and its RBAC.
        (
            "SCC granted to all authenticated users",
            "users/groups",
            lambda o: scc(o).__setitem__("groups", ["system:authenticated"]),
            ocp,
        ),
        (
            "SCC allows hostPath volumes",
            "volumes beyond emptyDir",
            lambda o: scc(o)["volumes"].append("hostPath"),
            ocp,
        ),
        (
            "SCC does not require dropping ALL",
            "requiredDropCapabilities",
            lambda o: scc(o).__setitem__("requiredDropCapabilities", []),
            ocp,
        ),
        (
            "SCC allows SYS_ADMIN",
            "allowedCapabilities",
            lambda o: scc(o)["allowedCapabilities"].append("SYS_ADMIN"),
            ocp,
        ),
        (
            "SCC allows privileged containers",
            "allowPrivilegedContainer",
            lambda o: scc(o).__setitem__("allowPrivilegedContainer", True),
            ocp,
        ),
        (
            "SCC lets any uid run",
            "runAsUser",
            lambda o: scc(o).__setitem__("runAsUser", {"type": "RunAsAny"}),
            ocp,
        ),
        (
            "SCC granted to the default ServiceAccount",
            "only ServiceAccount",
            lambda o: find(o, "RoleBinding", "echomesh-agent-scc")[0]["subjects"][0].__setitem__("name", "default"),
            ocp,
        ),
        (
            "Role uses the privileged SCC",
            "SCC `use`",
            lambda o: find(o, "Role", "echomesh-agent-scc")[0]["rules"][0].__setitem__(
                "resourceNames", ["privileged"]
            ),
            ocp,
        ),
        ("SCC missing on OpenShift", "SecurityContextConstraints", lambda o: o.remove(scc(o)), ocp),
        (
            "agents mount the aggregator's TLS key",
            "never see the key",
            lambda o: next(
                v for v in pod_spec(find(o, "DaemonSet", "echomesh-agent-pod")[0])["volumes"] if "secret" in v
            )["secret"].pop("items"),
            "deploy/overlays/tls",
        ),
        (
            "agents dial plaintext to a TLS aggregator",
            "ECHOMESH_AGGREGATOR",
            lambda o: env_of(_agent(o, "echomesh-agent-host"), "ECHOMESH_AGGREGATOR").__setitem__(
                "value", f"http://{AGGREGATOR}.{NAMESPACE}.svc:{GRPC_PORT}"
            ),
            "deploy/overlays/tls",
        ),
        (
            "TLS key world-readable",
            "readable by others",
            lambda o: next(
                v for v in pod_spec(find(o, "Deployment", AGGREGATOR)[0])["volumes"] if "secret" in v
            )["secret"].__setitem__("defaultMode", 0o644),
            "deploy/overlays/tls",
        ),
        (
            "gRPC probe on a TLS port",
            "/healthz on the HTTP port",
            lambda o: agg(o).__setitem__("livenessProbe", {"grpc": {"port": GRPC_PORT}}),
            "deploy/overlays/tls",
        ),
        (
            "nodes/status writes without the node-conditions flag",
            f"without {NODE_CONDITION_ENV}",
            lambda o: find(o, "ClusterRole")[0]["rules"].append(copy.deepcopy(NODE_CONDITION_RULES[0])),
            MONITORING_ENTRY,
        ),
        (
            "node-conditions flag without its events RBAC",
            "needs ['create', 'patch'] on events",
            lambda o: find(o, "ClusterRole", "echomesh-aggregator-node-conditions")[0]["rules"].pop(1),
            "deploy/overlays/node-conditions",
        ),
        (
            "nodes/status beyond patch",
            "must be exactly",
            lambda o: find(o, "ClusterRole", "echomesh-aggregator-node-conditions")[0]["rules"][0][
                "verbs"
            ].append("update"),
            "deploy/overlays/node-conditions",
        ),
        (
            "node-conditions threshold of 0",
            "within 10s..24h",
            lambda o: env_of(agg(o), NODE_CONDITION_ENV).__setitem__("value", "0s"),
            "deploy/overlays/node-conditions",
        ),
        (
            "host agent back on Autopilot",
            "want exactly",
            lambda o: o.append(copy.deepcopy(find(_RENDERS[MONITORING_ENTRY], "DaemonSet", "echomesh-agent-host")[0])),
            "deploy/overlays/gke-autopilot",
        ),
    ]

    def token_source(objs, name="echomesh-agent-pod"):
        vols = pod_spec(find(objs, "DaemonSet", name)[0])["volumes"]
        return next(v for v in vols if "projected" in v)["projected"]["sources"][0]["serviceAccountToken"]

    def cluster_rule(objs, resource):
        return next(r for r in find(objs, "ClusterRole")[0]["rules"] if resource in r["resources"])

    return new + [(what, word, mutate, MONITORING_ENTRY) for what, word, mutate in [
        ("RBAC verb create", "verb", lambda o: role(o)["verbs"].append("create")),
        ("pods through the ClusterRole", "namespaced Role", lambda o: role(o)["resources"].append("pods")),
        (
            "pods Role dropped",
            "needs get/list/watch on pods",
            lambda o: o.remove(find(o, "Role", "echomesh-aggregator-pods")[0]),
        ),
        ("tokenreviews beyond create", "tokenreviews", lambda o: cluster_rule(o, "tokenreviews")["verbs"].append("get")),
        (
            "no tokenreviews permission",
            "tokenreviews",
            lambda o: find(o, "ClusterRole")[0].__setitem__("rules", [role(o)]),
        ),
        ("agent token for the API server", "audience", lambda o: token_source(o).__setitem__("audience", "")),
        (
            "agent token valid for a day",
            "expirationSeconds",
            lambda o: token_source(o, "echomesh-agent-host").__setitem__("expirationSeconds", 86400),
        ),
        (
            "agent token file elsewhere",
            "ECHOMESH_AGENT_TOKEN_FILE",
            lambda o: env_of(_agent(o), "ECHOMESH_AGENT_TOKEN_FILE").__setitem__("value", "/tmp/token"),
        ),
        (
            "aggregator without token review",
            "ECHOMESH_AGENT_TOKEN_REVIEW",
            lambda o: env_of(agg(o), "ECHOMESH_AGENT_TOKEN_REVIEW").__setitem__("value", "false"),
        ),
        ("RBAC verb *", "verb", lambda o: role(o).__setitem__("verbs", ["*"])),
        ("RBAC on secrets", "resource", lambda o: role(o)["resources"].append("secrets")),
        (
            "binding to cluster-admin",
            "not one of ours",
            lambda o: find(o, "ClusterRoleBinding")[0]["roleRef"].__setitem__("name", "cluster-admin"),
        ),
        (
            "agent adds SYS_ADMIN",
            "SYS_ADMIN",
            lambda o: _agent(o)["securityContext"]["capabilities"]["add"].append("SYS_ADMIN"),
        ),
        (
            "host agent adds CAP_NET_ADMIN",
            "NET_ADMIN",
            lambda o: _agent(o, "echomesh-agent-host")["securityContext"]["capabilities"]["add"].append(
                "CAP_NET_ADMIN"
            ),
        ),
        (
            "agent keeps default caps",
            "drop ALL",
            lambda o: _agent(o)["securityContext"]["capabilities"].pop("drop"),
        ),
        (
            "agent privileged",
            "privileged",
            lambda o: _agent(o)["securityContext"].__setitem__("privileged", True),
        ),
        ("agent as root", "root", lambda o: _agent(o)["securityContext"].__setitem__("runAsUser", 0)),
        (
            "agent writable root fs",
            "read-only",
            lambda o: _agent(o)["securityContext"].__setitem__("readOnlyRootFilesystem", False),
        ),
        (
            "agent mounts API token",
            "automountServiceAccountToken",
            lambda o: pod_spec(find(o, "DaemonSet", "echomesh-agent-host")[0]).__setitem__(
                "automountServiceAccountToken", True
            ),
        ),
        (
            "agent tolerates only some taints",
            "taint",
            lambda o: pod_spec(find(o, "DaemonSet", "echomesh-agent-host")[0]).__setitem__(
                "tolerations", [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]
            ),
        ),
        ("agent init container with SYS_PTRACE", "SYS_PTRACE", add_debug_init_container),
        (
            "aggregator may escalate",
            "allowPrivilegeEscalation",
            lambda o: agg(o)["securityContext"].__setitem__("allowPrivilegeEscalation", True),
        ),
        (
            "aggregator HTTP liveness",
            "gRPC health probe",
            lambda o: agg(o).__setitem__(
                "livenessProbe", {"httpGet": {"path": "/healthz", "port": HTTP_PORT}}
            ),
        ),
        (
            "aggregator watches the wrong pods",
            "ECHOMESH_AGENT_SELECTOR",
            lambda o: next(e for e in agg(o)["env"] if e["name"] == "ECHOMESH_AGENT_SELECTOR").__setitem__(
                "value", "app=echomesh-agent"
            ),
        ),
        (
            "schema: unknown field",
            "invalid for Kubernetes",
            lambda o: _agent(o).__setitem__("imagePullPolcy", "Always"),
        ),
        (
            "schema: wrong type",
            "invalid for Kubernetes",
            lambda o: find(o, "Deployment", AGGREGATOR)[0]["spec"].__setitem__("replicas", "one"),
        ),
        (
            "DaemonSet selectors overlap",
            "also selects",
            lambda o: find(o, "DaemonSet", "echomesh-agent-host")[0]["spec"]["selector"]["matchLabels"].pop(
                "app.kubernetes.io/component"
            ),
        ),
        (
            "dashboard ConfigMap without the sidecar label",
            "grafana_dashboard",
            lambda o: find(o, "ConfigMap", DASHBOARD_CONFIGMAP)[0]["metadata"]["labels"].pop("grafana_dashboard"),
        ),
        (
            "dashboard ConfigMap drifted from echomesh.json",
            "differs from echomesh.json",
            lambda o: find(o, "ConfigMap", DASHBOARD_CONFIGMAP)[0]["data"].__setitem__(
                DASHBOARD_FILE.name, json.dumps({"title": "old"})
            ),
        ),
        (
            "recording rule named like an exported series",
            "level:metric:operations",
            lambda o: next(
                r for g in find(o, "PrometheusRule")[0]["spec"]["groups"] for r in g["rules"] if r.get("record")
            ).__setitem__("record", "echomesh_node_loss_ratio_5m"),
        ),
        (
            "PrometheusRule drifted from rules.yaml",
            "differs",
            lambda o: find(o, "PrometheusRule")[0]["spec"]["groups"][0]["rules"][0].__setitem__(
                "expr", "vector(1)"
            ),
        ),
    ]]


def _dockerfile_mutations(texts: dict[str, str]) -> list[tuple[str, str, dict[str, str]]]:
    """(what, a word the violation must contain, the broken Dockerfiles)."""
    agent = texts.get("Dockerfile.agent", "")
    return [
        (
            "base image by tag only",
            "not pinned by digest",
            {**texts, "Dockerfile.agent": re.sub(r"@sha256:[0-9a-f]{64}", "", agent, count=1)},
        ),
        (
            "builder on the target platform",
            "BUILDPLATFORM",
            {**texts, "Dockerfile.agent": agent.replace("FROM --platform=$BUILDPLATFORM ", "FROM ")},
        ),
        (
            "runtime image named directly",
            "names an image directly",
            {**texts, "Dockerfile.agent": agent.replace("FROM ${RUNTIME_IMAGE}\n", "FROM debian:bookworm-slim\n")},
        ),
        (
            "cargo build for the build machine only",
            "without --target",
            {**texts, "Dockerfile.agent": agent.replace('--target "$triple" ', "")},
        ),
        (
            "arm64 not mapped",
            "arm64",
            {**texts, "Dockerfile.agent": re.sub(r"(?m)^(\s*)arm64\)", r"\1aarch64)", agent)},
        ),
    ]


# The good renders of the current run, by entry point (set by main before self_test).
_RENDERS: dict[str, list[Obj]] = {}


def self_test(renders: dict[str, list[Obj]], entries: dict[str, Entry]) -> list[str]:
    """Break good renders in known ways; each break must be reported. Returns the checks that missed."""
    _RENDERS.clear()
    _RENDERS.update(renders)
    missed = []
    for what, word, mutate, entry in _mutations():
        objs = copy.deepcopy(renders[entry])
        mutate(objs)
        # Only the schema of the one broken object matters, and one version is enough here.
        violations = check_objects(objs, K8S_VERSIONS[-1:], entries[entry])
        if not any(word.lower() in v.lower() for v in violations):
            missed.append(f"self-test: '{what}' was not caught (violations: {violations or 'none'})")
    return missed


# ------------------------------------------------------------------------------------------- main


def render(kubectl: str, directory: Path) -> list[Obj]:
    try:
        res = subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolError(f"{kubectl} kustomize {directory}: {e}") from e
    if res.returncode != 0:
        raise ToolError(f"kubectl kustomize {directory} failed:\n{res.stderr.strip()}")
    return load_documents(res.stdout)


def load_documents(text: str) -> list[Obj]:
    return [d for d in yaml.safe_load_all(text) if d]


def run_promtool(promtool: str) -> list[str]:
    out = []
    for args in (["check", "rules", str(RULES_FILE)], ["test", "rules", str(RULES_TEST_FILE)]):
        try:
            res = subprocess.run(
                [promtool, *args], capture_output=True, text=True, timeout=60, cwd=MONITORING
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ToolError(f"promtool {' '.join(args)}: {e}") from e
        if res.returncode != 0:
            out.append(f"promtool {args[0]} {args[1]}: {(res.stdout + res.stderr).strip()}")
    return out


def sync_rules() -> None:
    src = RULES_FILE.read_text()
    start = src.index("\ngroups:\n") + 1
    body = "".join("  " + line if line.strip() else line for line in src[start:].splitlines(True))
    head = PROMETHEUSRULE_FILE.read_text().split("\nspec:\n", 1)[0]
    PROMETHEUSRULE_FILE.write_text(head + "\nspec:\n" + body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubectl", help="kubectl with kustomize v5 (validate.sh passes its pinned one)")
    ap.add_argument("--promtool", help="promtool for `check rules` and `test rules`")
    ap.add_argument("--check-file", type=Path, help="check an already rendered manifest and exit")
    ap.add_argument("--sync-rules", action="store_true", help="rewrite prometheusrule.yaml from rules.yaml")
    args = ap.parse_args()

    if args.sync_rules:
        sync_rules()
        print(f"wrote {PROMETHEUSRULE_FILE.relative_to(DEPLOY.parent)}")
        return 0
    try:
        if args.check_file:
            violations = check_objects(load_documents(args.check_file.read_text()))
            for v in violations:
                print(f"FAIL {v}")
            print(f"{args.check_file}: {len(violations)} violation(s)")
            return 1 if violations else 0
        if not args.kubectl:
            ap.error("--kubectl is required for a full run")

        violations, objects = [], 0
        renders = {name: render(args.kubectl, path) for name, (path, _) in ENTRY_POINTS.items()}
        entries = {
            name: Entry(
                profile,
                "openshift" if name == "deploy/overlays/openshift"
                else "pod-network-only" if name in POD_NETWORK_ONLY else None,
                example_cidrs(path) if profile == "standard" else None,
            )
            for name, (path, profile) in ENTRY_POINTS.items()
        }
        for name, objs in renders.items():
            objects += len(objs)
            violations += [f"[{name}] {v}" for v in check_objects(objs, entry=entries[name])]
        # The example CIDRs must show both families, the point of taking them as parameters.
        for name, entry in entries.items():
            if entry.cidrs is not None:
                violations += [f"[{name}] {v}" for v in check_cidr_families(entry.cidrs)]
        monitoring = renders["deploy/overlays/monitoring"]
        kinds = {o["kind"] for o in monitoring}
        if not MONITORING_KINDS <= kinds:
            violations.append(f"[deploy/overlays/monitoring] missing {sorted(MONITORING_KINDS - kinds)}")
        rules = yaml.safe_load(RULES_FILE.read_text())
        violations += check_rule_groups(rules, RULES_FILE.name)
        promtool_note = "promtool skipped"
        if args.promtool:
            violations += run_promtool(args.promtool)
            promtool_note = "promtool check+test rules ok"
        dashboard, dash_violations = load_dashboard()
        violations += dash_violations or check_dashboard_all(dashboard, rules, args.promtool)
        violations += check_docker_context(DEPLOY.parent)
        dockerfiles = read_dockerfiles(DEPLOY.parent)
        violations += check_dockerfiles(dockerfiles)
        missed = [] if violations else self_test(renders, entries)
        if not violations:
            for what, word, broken in _dockerfile_mutations(dockerfiles):
                if not any(word in v for v in check_dockerfiles(broken)):
                    missed.append(f"self-test: Dockerfile '{what}' was not caught")
        if not violations and not check_docker_context(DEPLOY.parent, ["target", "agent*"]):
            missed.append("self-test: a .dockerignore excluding the agent crate was not caught")
        if not violations:
            recorded = recorded_series(rules)
            for what, word, mutate in _dashboard_mutations():
                broken = copy.deepcopy(dashboard)
                mutate(broken)
                found = check_dashboard_all(broken, rules, args.promtool)
                if not any(word.lower() in v.lower() for v in found):
                    missed.append(f"self-test: dashboard '{what}' was not caught (violations: {found or 'none'})")
            if recorded & exported_series() or not recorded:
                missed.append("self-test: the recording rules are missing or shadow exported series")
        if not violations and not check_cidr_families({"10.0.0.0/8", "192.168.0.0/16"}):
            missed.append("self-test: an IPv4-only example cidrs.yaml was not caught")
        violations += missed
    except ToolError as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 2

    for v in violations:
        print(f"FAIL {v}")
    if violations:
        print(f"deploy manifests FAILED: {len(violations)} violation(s), see the FAIL lines above")
        return 1
    alerts = sum(1 for g in rules.get("groups", []) for r in g.get("rules", []) if r.get("alert"))
    # Object breaks, the .dockerignore and cidrs.yaml breaks, and the Dockerfile breaks.
    breaks = len(_mutations()) + 2 + len(_dockerfile_mutations(dockerfiles)) + len(_dashboard_mutations())
    records = len(recorded_series(rules))
    panels = sum(1 for p in _panels(dashboard["panels"]) if p.get("type") != "row")
    print(
        f"deploy manifests OK: {len(renders)} renders, {objects} objects valid for k8s "
        f"{' and '.join(v.rsplit('.', 1)[0] for v in K8S_VERSIONS)} (strict), RBAC read-only (pods namespaced) + create tokenreviews (+ nodes/status, events with node-conditions only), agents with projected tokens, "
        f"agents NET_RAW only, {alerts} alert rules, {records} recording rules, {promtool_note}, "
        f"dashboard {panels} panels with {len(dashboard_queries(dashboard))} queries "
        f"({'parsed by promtool' if args.promtool else 'not parsed: no promtool'}), "
        f"{breaks}/{breaks} deliberate breaks caught"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
