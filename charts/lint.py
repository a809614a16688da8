#!/usr/bin/env python3
"""Lints the restate-operator chart strictly (against Kubernetes 1.20) and renders it with
several sets of values; values the schema or the templates must refuse are tried too.

Exits 1 listing every problem: a lint warning or error, a render failure, a rendered
manifest missing what the operator needs, or bad values that got through. Exits 2 when the
Helm SDK is missing (`pip install helm-python-sdk`).

    python3 charts/lint.py
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import helm_python as helm
except ImportError as e:
    print(f"charts/lint.py needs the Helm SDK for Python: pip install helm-python-sdk ({e})", file=sys.stderr)
    sys.exit(2)

CHART = Path(__file__).resolve().parent / "restate-operator"
KUBE_VERSION = "v1.20.2"
RELEASE = "restate-operator"
NAMESPACE = "restate-operator"
WARNING = 2

# (name, values) that must lint and render cleanly.
GOOD = [
    ("default values", None),
    ("watchNamespaces [a, b]", {"watchNamespaces": ["a", "b"]}),
    ("two replicas", {"replicas": 2}),
]

# (name, values) that the schema or a template must refuse.
BAD = [
    ("replicas 0", {"replicas": 0}),
    ("an unknown logLevel", {"logLevel": "loud"}),
    ("an unknown pullPolicy", {"image": {"repository": "x", "pullPolicy": "Sometimes"}}),
    ("an unknown top-level key", {"replica": 2}),
    ("two replicas without leader election", {"replicas": 2, "leaderElection": {"enabled": False}}),
]


def lint_findings(values: dict | None) -> list[str]:
    """Lint messages of severity warning or worse, and lint errors."""
    report = helm.lint(CHART, values, strict=True, kube_version=KUBE_VERSION, namespace=NAMESPACE)
    found = [f"{m['path']}: {m['error'].strip()}" for m in report["messages"] if m["severity"] >= WARNING]
    found += [e.strip() for e in report["errors"] if not any(e.strip() in f for f in found)]
    return found


def render(chart: helm.Chart, values: dict | None) -> dict[str, str]:
    return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def manifest_problems(name: str, values: dict | None, manifests: dict[str, str]) -> list[str]:
    """What the operator needs from the rendered chart, checked as text."""
    problems = []

    def need(template: str, *lines: str) -> None:
        """Each of `lines` is a whole line of the template's output (indentation aside)."""
        body = manifests.get(f"{RELEASE}/templates/{template}", "")
        present = {line.strip().removeprefix("- ") for line in body.splitlines()}
        for line in lines:
            if line not in present:
                problems.append(f"{name}: templates/{template} lacks the line {line!r}")

    need(
        "deployment.yaml",
        "--http-port=8081",
        "--leader-election=true",
        f"--lease-name={RELEASE}",
        "--lease-duration=15",
        "path: /ready",
        "path: /health",
        "containerPort: 8081",
        "name: POD_NAME",
        "name: OPERATOR_NAMESPACE",
        f"--operator-pod-labels=app.kubernetes.io/name=restate-operator,app.kubernetes.io/instance={RELEASE}",
    )
    need(
        "rbac.yaml",
        'resources: ["leases"]',
        'resources: ["events"]',
        'resources: ["restateclusters/finalizers"]',
        'resources: ["persistentvolumeclaims"]',
        'resources: ["jobs"]',
    )
    rbac = manifests.get(f"{RELEASE}/templates/rbac.yaml", "")
    if '"pods"' in rbac:
        problems.append(f"{name}: the operator must not get access to Pods")
    # Secrets: only its clusters' node-port secrets, by name (get) and once (create); it
    # must never list or watch them (that would read every Secret of the namespace).
    secret_rules = [line for line in rbac.splitlines() if '"secrets"' in line]
    if len(secret_rules) != rbac.count('"secrets"'):
        problems.append(f"{name}: Secrets appear in rbac.yaml outside a rule's resources line")
    for index, line in enumerate(rbac.splitlines()):
        if '"secrets"' in line:
            verbs = rbac.splitlines()[index + 1] if index + 1 < len(rbac.splitlines()) else ""
            if verbs.strip() != 'verbs: ["get", "create"]':
                problems.append(f"{name}: Secrets may only be got and created, not {verbs.strip()!r}")
    namespaces = (values or {}).get("watchNamespaces", [])
    for namespace in namespaces:
        need("deployment.yaml", f"--namespace={namespace}")
        if f"kind: RoleBinding\nmetadata:\n  name: {RELEASE}\n  namespace: {namespace}\n" not in rbac:
            problems.append(f"{name}: templates/rbac.yaml has no RoleBinding in namespace {namespace}")
    # The main ClusterRole's binding: cluster-wide only when every namespace is watched. (The
    # Nodes role, `<release>-nodes`, is cluster-scoped and always bound cluster-wide.)
    main_binding = f"kind: ClusterRoleBinding\nmetadata:\n  name: {RELEASE}\n"
    if namespaces and main_binding in rbac:
        problems.append(f"{name}: watching some namespaces must not bind the ClusterRole cluster-wide")
    if not namespaces and main_binding not in rbac:
        problems.append(f"{name}: watching every namespace needs a ClusterRoleBinding")
    if f"kind: ClusterRoleBinding\nmetadata:\n  name: {RELEASE}-nodes\n" not in rbac:
        problems.append(f"{name}: the operator needs its Nodes ClusterRoleBinding ({RELEASE}-nodes) for the pods' locations")
    node_rules = [i for i, line in enumerate(rbac.splitlines()) if '"nodes"' in line]
    for index in node_rules:
        verbs = rbac.splitlines()[index + 1].strip()
        if verbs != 'verbs: ["list"]':
            problems.append(f"{name}: Nodes may only be listed, not {verbs!r}")
    return problems


def main() -> int:
    helm.disable_logging()
    problems: list[str] = []
    with helm.Chart.load(CHART) as chart:
        for name, values in GOOD:
            problems += [f"lint ({name}): {finding}" for finding in lint_findings(values)]
            try:
                problems += manifest_problems(name, values, render(chart, values))
            except helm.HelmError as e:
                problems.append(f"render ({name}): {e}")
        for name, values in BAD:
            try:
                chart.validate_schema(values)
                render(chart, values)
            except helm.HelmError:
                continue
            problems.append(f"{name} ({values}) was accepted; the schema or a template must refuse it")
    if problems:
        print(f"{CHART}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"- {problem}", file=sys.stderr)
        return 1
    print(f"{CHART}: lint clean (strict, Kubernetes {KUBE_VERSION}); rendered {len(GOOD)} value sets; {len(BAD)} bad ones refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
