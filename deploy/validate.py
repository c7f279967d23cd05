#!/usr/bin/env python3
"""Offline checks of the rendered echomesh manifests; deploy/validate.sh sets up the tools and runs this.

What a pass means:
  * every kustomize entry point renders, and every built-in object is valid against the Kubernetes
    OpenAPI schemas (strict: unknown fields are errors) of the oldest and newest supported versions;
  * the security posture the docs promise holds: RBAC is get/list/watch on nodes and pods only, agents
    carry no capability but NET_RAW and drop ALL, every pod is non-root with a read-only root
    filesystem and seccomp RuntimeDefault, agents mount no API token and tolerate every taint;
  * the objects are wired to each other (selectors, ports, Service names, priority class, monitors);
  * the NetworkPolicies only open what they say they open;
  * the PrometheusRule carries exactly the groups of rules.yaml, and promtool accepts and tests them;
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

# Entry points that must render; each is checked as a whole install.
ENTRY_POINTS = {
    "deploy": DEPLOY,
    "deploy/overlays/monitoring": DEPLOY / "overlays" / "monitoring",
}
# Oldest and newest Kubernetes versions the manifests must be valid for. The oldest is where every
# field used here is GA (native gRPC probes: 1.27, PDB unhealthyPodEvictionPolicy: 1.31).
K8S_VERSIONS = ("1.31.0", "1.37.0")

NAMESPACE = "echomesh"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
AGENT_DAEMONSETS = {"echomesh-agent-pod": "pod", "echomesh-agent-host": "host"}
AGGREGATOR = "echomesh-aggregator"
GRPC_PORT, HTTP_PORT, AGENT_PORT = 7070, 7071, 7072
READ_VERBS = {"get", "list", "watch"}
READ_RESOURCES = {"nodes", "pods"}
AGENT_CAPS = {"NET_RAW"}
REQUIRED_ALERTS = {"NodeUnreachable", "HighPacketLoss", "HighLatencyP99", "AgentMissing", "AggregatorDown"}
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
            continue  # no schema offline: check_monitoring covers their shape
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
    roles = find(objs, "ClusterRole") + find(objs, "Role")
    for role in roles:
        if role.get("aggregationRule"):
            out.append(f"{name_of(role)}: aggregationRule would pull in other roles' verbs")
        for rule in role.get("rules") or []:
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
        for subject in binding.get("subjects") or []:
            if (subject.get("kind"), subject.get("name")) != ("ServiceAccount", AGGREGATOR):
                out.append(
                    f"{name_of(binding)}: grants to {subject.get('kind')}/{subject.get('name')}; "
                    f"only the aggregator's ServiceAccount may hold API permissions"
                )
    if not any(
        set(r.get("resources") or []) >= READ_RESOURCES for role in roles for r in role.get("rules") or []
    ):
        out.append("ClusterRole: the aggregator needs get/list/watch on nodes and pods")
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
    return out


def check_agents(objs: list[Obj]) -> list[str]:
    out = []
    daemonsets = {d["metadata"]["name"]: d for d in find(objs, "DaemonSet")}
    if set(daemonsets) != set(AGENT_DAEMONSETS):
        out.append(f"DaemonSets: want exactly {sorted(AGENT_DAEMONSETS)}, have {sorted(daemonsets)}")
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
            url = env.get("ECHOMESH_AGGREGATOR", {}).get("value", "")
            if url != f"http://{AGGREGATOR}.{NAMESPACE}.svc:{GRPC_PORT}":
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
    sa = find(objs, "ServiceAccount", "echomesh-agent")
    if not sa or sa[0].get("automountServiceAccountToken") is not False:
        out.append("ServiceAccount/echomesh-agent: missing or automountServiceAccountToken is not false")
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
        ns_ref = env.get("ECHOMESH_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if ns_ref != "metadata.namespace":
            out.append(f"{cn}: ECHOMESH_NAMESPACE should come from the downward API metadata.namespace")
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


def check_network_policy(objs: list[Obj]) -> list[str]:
    """Agents' egress: the aggregator's gRPC port, DNS, and all protocols (ICMP) only to named peers."""
    out = []
    policies = find(objs, "NetworkPolicy")
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
                if (
                    direction == "Egress"
                    and peer.get("namespaceSelector") is not None
                    and not peer.get("podSelector")
                ):
                    out.append(f"{where}: opens to every pod of selected namespaces")
    return out


def check_monitoring(objs: list[Obj]) -> list[str]:
    out = []
    for obj in objs:
        if obj.get("kind") in CRD_KINDS and obj.get("apiVersion") != "monitoring.coreos.com/v1":
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
    return out


def check_rule_groups(spec: Obj, where: str) -> list[str]:
    out, seen = [], set()
    for group in spec.get("groups") or []:
        for rule in group.get("rules") or []:
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


OBJECT_CHECKS: list[tuple[str, Callable[[list[Obj]], list[str]]]] = [
    ("rbac", check_rbac),
    ("agents", check_agents),
    ("aggregator", check_aggregator),
    ("wiring", check_wiring),
    ("network-policy", check_network_policy),
    ("monitoring", check_monitoring),
]


def check_objects(objs: list[Obj], schema_versions: Iterable[str] = K8S_VERSIONS) -> list[str]:
    """Every object check over one rendered install."""
    out = check_schema(objs, schema_versions)
    for _, check in OBJECT_CHECKS:
        out += check(objs)
    return out


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


# -------------------------------------------------------------------------------------- self-test


def _agent(objs: list[Obj], name: str = "echomesh-agent-pod") -> Obj:
    return pod_spec(find(objs, "DaemonSet", name)[0])["containers"][0]


def _mutations() -> list[tuple[str, str, Callable[[list[Obj]], None]]]:
    """(what, a word the violation must contain, how to break the render)."""

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

    return [
        ("RBAC verb create", "verb", lambda o: role(o)["verbs"].append("create")),
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
            "agent egress to 443",
            "opens TCP 443",
            lambda o: agent_egress(o).append({"ports": [{"protocol": "TCP", "port": 443}]}),
        ),
        (
            "agent egress to the internet",
            "internet",
            lambda o: agent_egress(o).append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
        ),
        (
            "DaemonSet selectors overlap",
            "also selects",
            lambda o: find(o, "DaemonSet", "echomesh-agent-host")[0]["spec"]["selector"]["matchLabels"].pop(
                "app.kubernetes.io/component"
            ),
        ),
        (
            "PrometheusRule drifted from rules.yaml",
            "differs",
            lambda o: find(o, "PrometheusRule")[0]["spec"]["groups"][0]["rules"][0].__setitem__(
                "expr", "vector(1)"
            ),
        ),
    ]


def self_test(good: list[Obj]) -> list[str]:
    """Break a good render in known ways; each break must be reported. Returns the checks that missed."""
    if baseline := check_objects(good):
        return [f"self-test needs a clean render, got: {baseline[0]}"]
    missed = []
    for what, word, mutate in _mutations():
        objs = copy.deepcopy(good)
        mutate(objs)
        # Only the schema of the one broken object matters, and one version is enough here.
        violations = check_objects(objs, K8S_VERSIONS[-1:])
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
        renders = {name: render(args.kubectl, path) for name, path in ENTRY_POINTS.items()}
        for name, objs in renders.items():
            objects += len(objs)
            violations += [f"[{name}] {v}" for v in check_objects(objs)]
        monitoring = renders["deploy/overlays/monitoring"]
        kinds = {o["kind"] for o in monitoring}
        if not CRD_KINDS <= kinds:
            violations.append(f"[deploy/overlays/monitoring] missing {sorted(CRD_KINDS - kinds)}")
        rules = yaml.safe_load(RULES_FILE.read_text())
        violations += check_rule_groups(rules, RULES_FILE.name)
        promtool_note = "promtool skipped"
        if args.promtool:
            violations += run_promtool(args.promtool)
            promtool_note = "promtool check+test rules ok"
        violations += check_docker_context(DEPLOY.parent)
        missed = [] if violations else self_test(monitoring)
        if not violations and not check_docker_context(DEPLOY.parent, ["target", "agent*"]):
            missed.append("self-test: a .dockerignore excluding the agent crate was not caught")
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
    print(
        f"deploy manifests OK: {len(renders)} renders, {objects} objects valid for k8s "
        f"{' and '.join(v.rsplit('.', 1)[0] for v in K8S_VERSIONS)} (strict), RBAC get/list/watch only, "
        f"agents NET_RAW only, {alerts} alert rules, {promtool_note}, "
        f"{len(_mutations()) + 1}/{len(_mutations()) + 1} deliberate breaks caught"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
