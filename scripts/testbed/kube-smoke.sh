#!/usr/bin/env bash
# Smoke test of the Kubernetes testbed: start a control plane in a fresh DIR, check that it
# serves what the operator's e2e tests need, stop it.
#
#   scripts/testbed/kube-smoke.sh [DIR]      (DIR: default a new temporary directory)
#   RESTATE_TESTBED_SMOKE_SOAK=60            seconds to wait before checking the node again
#
# Needs `kube.sh install` to have run. Prints "N passed, N failed" at the end.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KUBE_SH=$HERE/kube.sh
TEMP_DIR=
if [[ -n ${1:-} ]]; then DIR=$1; else DIR=$(mktemp -d /tmp/restate-testbed-smoke.XXXXXX) TEMP_DIR=$DIR; fi
SOAK=${RESTATE_TESTBED_SMOKE_SOAK:-60}
passed=0 failed=0

check() { # DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then
    echo "ok   - $what"
    passed=$((passed + 1))
  else
    echo "FAIL - $what"
    failed=$((failed + 1))
  fi
}

# Retry COMMAND for up to N seconds.
eventually() { # SECONDS COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

cleanup() { "$KUBE_SH" stop "$DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT

t0=$SECONDS
"$KUBE_SH" start "$DIR"
echo "start took $((SECONDS - t0)) s"
# shellcheck disable=SC1091
source "$DIR/env"

server_version() { kubectl version -o json | grep -q '"gitVersion": "v1.20.2"'; }
node_ready() {
  [[ $(kubectl get node "$RESTATE_TESTBED_NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]
}
node_untainted() { [[ -z $(kubectl get node "$RESTATE_TESTBED_NODE" -o 'jsonpath={.spec.taints}') ]]; }
node_allocatable() {
  [[ $(kubectl get node "$RESTATE_TESTBED_NODE" -o 'jsonpath={.status.allocatable.cpu}/{.status.allocatable.memory}/{.status.allocatable.pods}') == 2/24Gi/110 ]]
}
pods_bound() { # NS COUNT
  [[ $(kubectl -n "$1" get pods -o 'jsonpath={range .items[*]}{.spec.nodeName}{"\n"}{end}' | grep -c "^$RESTATE_TESTBED_NODE\$") == "$2" ]]
}
pods_alive() { # NS COUNT
  [[ $(kubectl -n "$1" get pods -o 'jsonpath={range .items[*]}{.metadata.deletionTimestamp}{"\n"}{end}' | grep -c '^$') == "$2" ]]
}
cr_listed() { kubectl -n smoke get widgets w1 --no-headers | grep -Eq '^w1 +3 '; }
status_patch() {
  local token api
  token=$(<"$RESTATE_TESTBED_DIR/token")
  api=$(kubectl config view -o 'jsonpath={.clusters[0].cluster.server}')
  curl -sSk --fail -o /dev/null -X PATCH -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/merge-patch+json' --data-binary '{"status":{"phase":"Running"}}' \
    "$api/apis/testbed.restate.dev/v1/namespaces/smoke/widgets/w1/status"
}
cr_status() { kubectl -n smoke get widgets w1 --no-headers | grep -Eq '^w1 +3 +Running( |$)'; }
pdb_v1beta1() { kubectl api-versions | grep -qx policy/v1beta1; }

check "kubectl is the cached 1.20.2 one" bash -c 'kubectl version --client | grep -q v1.20.2'
check "server version v1.20.2" server_version
check "node Ready" node_ready
check "node has no taints" node_untainted
check "node allocatable cpu 2, memory 24Gi, pods 110" node_allocatable
check "create namespace" kubectl create namespace smoke
check "default ServiceAccount in new namespace" eventually 30 kubectl -n smoke get serviceaccount default

kubectl -n smoke apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: smoke}
spec:
  serviceName: smoke
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: smoke}}
  template:
    metadata: {labels: {app: smoke}}
    spec:
      containers:
      - name: main
        image: debian:bookworm-slim
        command: [sleep, infinity]
        resources: {requests: {cpu: 100m, memory: 64Mi}}
EOF
check "StatefulSet's 2 pods created and bound to $RESTATE_TESTBED_NODE" eventually 60 pods_bound smoke 2

kubectl apply -f - >/dev/null <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.testbed.restate.dev}
spec:
  group: testbed.restate.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {replicas: {type: integer, minimum: 1}}}
          status: {type: object, properties: {phase: {type: string}}}
EOF
check "CRD established" kubectl wait --for condition=established --timeout=30s crd/widgets.testbed.restate.dev
apply_cr() {
  kubectl -n smoke apply -f - <<'EOF'
apiVersion: testbed.restate.dev/v1
kind: Widget
metadata: {name: w1}
spec: {replicas: 3}
EOF
}
check "create a custom resource" eventually 30 apply_cr
check "kubectl get lists it with printer columns" cr_listed
check "status subresource patch" status_patch
check "status shows in printer columns" cr_status
check "policy/v1beta1 served (PodDisruptionBudget)" pdb_v1beta1

if ((SOAK > 0)); then
  echo "waiting ${SOAK} s (no kubelet heartbeat)..."
  sleep "$SOAK"
  check "node still Ready after ${SOAK} s" node_ready
  check "node still untainted after ${SOAK} s" node_untainted
  check "pods not evicted after ${SOAK} s" pods_alive smoke 2
fi

check "status reports everything running" "$KUBE_SH" status "$DIR"
t0=$SECONDS
check "stop" "$KUBE_SH" stop "$DIR"
echo "stop took $((SECONDS - t0)) s"
check "status reports stopped (exit 3)" bash -c "'$KUBE_SH' status '$DIR' >/dev/null; [[ \$? == 3 ]]"
check "stop again (idempotent)" "$KUBE_SH" stop "$DIR"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]] || { echo "logs kept in $DIR"; exit 1; }
[[ -z $TEMP_DIR ]] || rm -rf "$TEMP_DIR"
