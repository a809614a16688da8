#!/usr/bin/env bash
# Kubernetes testbed: a real kube-apiserver control plane (v1.20.2) on this machine.
#
#   scripts/testbed/kube.sh install        # apt packages + build/cache the four binaries (once)
#   scripts/testbed/kube.sh start  [DIR]   # etcd + apiserver + controller-manager + scheduler + Node
#   scripts/testbed/kube.sh stop   [DIR]   # kill what start started (idempotent)
#   scripts/testbed/kube.sh status [DIR]   # what runs (exit 0 all up, 3 otherwise)
#   scripts/testbed/kube.sh env    [DIR]   # print the export lines (same as DIR/env)
#
# DIR defaults to /tmp/restate-testbed. See docs/testbed.md.
set -euo pipefail

KUBE_VERSION=1.20.2
CACHE_ROOT=${RESTATE_TESTBED_CACHE:-$HOME/.cache/restate-cluster/testbed}
KUBE_HOME=$CACHE_ROOT/kubernetes-$KUBE_VERSION
BIN_DIR=$KUBE_HOME/bin
BUILD_DIR=$KUBE_HOME/build
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
DEFAULT_DIR=/tmp/restate-testbed
NODE_NAME=testbed-node
SERVICE_CIDR=10.96.0.0/16
START_TIMEOUT=${RESTATE_TESTBED_START_TIMEOUT:-120}
# 1 = keep the node lifecycle controller and run a heartbeat loop for the Node instead.
NODE_LIFECYCLE=${RESTATE_TESTBED_NODE_LIFECYCLE:-0}
HEARTBEAT_INTERVAL=${RESTATE_TESTBED_HEARTBEAT_INTERVAL:-10}
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler node-heartbeat)
# Pods run as containers on this Docker network (the test kubelet, e2e/src/bin/test-kubelet);
# they reach the API server at the network's gateway, which the serving certificate names.
DOCKER_NETWORK=${RESTATE_TESTBED_NETWORK:-restate-testbed}
DOCKER_SUBNET=${RESTATE_TESTBED_SUBNET:-172.30.0.0/16}
DOCKER_GATEWAY=${RESTATE_TESTBED_GATEWAY:-172.30.0.1}

log() { echo "testbed: $*" >&2; }
die() { echo "testbed: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- install

binaries_present() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x $BIN_DIR/$b ]] || return 1; done
}

APT_UPDATED=0
apt_update() {
  if [[ $APT_UPDATED == 0 ]]; then
    log "apt-get update"
    # A broken third-party source must not stop us: the Debian indexes are what we need.
    apt-get update -qq || log "warning: apt-get update reported errors (continuing)"
    APT_UPDATED=1
  fi
}

apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} == 0 ]] && return 0
  apt_update
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

as_root() {
  [[ $(id -u) == 0 ]] || die "install needs root (apt-get); run it as root or with sudo"
}

SRC_LIST=/etc/apt/sources.list.d/restate-testbed-deb-src.sources
SRC_LIST_OLD=/etc/apt/sources.list.d/restate-testbed-deb-src.list

# Add deb-src entries mirroring the Debian deb entries (deb822 debian.sources or
# one-line /etc/apt/sources.list), unless apt already knows the kubernetes source.
ensure_deb_src() {
  if apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
    return 0
  fi
  if [[ ! -e $SRC_LIST && ! -e $SRC_LIST_OLD ]]; then
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
      log "adding deb-src entries ($SRC_LIST)"
      # Copy each enabled stanza whose Types has "deb" but not "deb-src", as Types: deb-src.
      awk '
        function flush() {
          if (n > 0 && isdeb && !hassrc && enabled) {
            for (i = 1; i <= n; i++) print lines[i]; print ""
          }
          n = 0; isdeb = 0; hassrc = 0; enabled = 1
        }
        BEGIN { n = 0; enabled = 1 }
        /^[ \t]*$/ { flush(); next }
        /^#/ { next }
        /^Types:/ {
          if ($0 ~ /[ \t]deb([ \t]|$)/) isdeb = 1
          if ($0 ~ /deb-src/) hassrc = 1
          lines[++n] = "Types: deb-src"; next
        }
        /^Enabled:[ \t]*(no|false)/ { enabled = 0 }
        { lines[++n] = $0 }
        END { flush() }
      ' /etc/apt/sources.list.d/debian.sources >"$SRC_LIST.tmp"
      [[ -s $SRC_LIST.tmp ]] || { rm -f "$SRC_LIST.tmp"; die "no deb entry found in /etc/apt/sources.list.d/debian.sources"; }
      mv "$SRC_LIST.tmp" "$SRC_LIST"
    elif [[ -f /etc/apt/sources.list ]] && grep -q '^deb ' /etc/apt/sources.list; then
      log "adding deb-src entries ($SRC_LIST_OLD)"
      sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$SRC_LIST_OLD"
    else
      die "cannot find the Debian apt sources to derive a deb-src entry from"
    fi
  fi
  APT_UPDATED=0
  apt_update
  apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes' \
    || die "apt has no source package 'kubernetes' even after adding deb-src entries"
}

build_kubernetes() {
  local dl=$BUILD_DIR/download src
  rm -rf "$BUILD_DIR"
  mkdir -p "$dl"
  log "downloading the Debian kubernetes source package (apt-get source)..."
  (cd "$dl" && apt-get source --download-only -qq kubernetes >"$BUILD_DIR/apt-source.log" 2>&1) \
    || { tail -n 20 "$BUILD_DIR/apt-source.log" >&2; die "apt-get source kubernetes failed"; }
  local orig
  orig=$(find "$dl" -maxdepth 1 -name 'kubernetes_*.orig.tar.*' | head -n 1)
  [[ -n $orig ]] || die "no kubernetes orig tarball in $dl: $(ls "$dl")"
  log "unpacking $(basename "$orig")..."
  mkdir -p "$BUILD_DIR/src"
  tar -C "$BUILD_DIR/src" -xf "$orig"
  # The orig tarball has one top-level directory.
  src=$(find "$BUILD_DIR/src" -mindepth 1 -maxdepth 1 -type d | head -n 1)
  [[ -f $src/Makefile && -d $src/cmd/kube-apiserver ]] || die "unexpected source layout under $BUILD_DIR/src"
  rm -rf "$dl"

  # vendored reflect2 1.0.1 crashes under Go >= 1.18: use Debian's 1.0.2 copy instead.
  local r2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [[ -d $r2 ]] || die "$r2 missing (golang-github-modern-go-reflect2-dev)"
  log "replacing vendored github.com/modern-go/reflect2 with Debian's $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"
  rsync -a -L --delete "$r2/" "$src/vendor/github.com/modern-go/reflect2/"

  # GOPATH mode, as debian/rules does it.
  mkdir -p "$src/.go/src/k8s.io"
  ln -sfn ../../.. "$src/.go/src/k8s.io/kubernetes"

  local what
  for what in "${BINARIES[@]}"; do
    case $what in
      kube-apiserver) log "building $what (about 5 minutes the first time)..." ;;
      *) log "building $what..." ;;
    esac
    (
      cd "$src"
      export GOPATH=$src/.go GOCACHE=$BUILD_DIR/gocache GO111MODULE=off CGO_ENABLED=0 \
        GOFLAGS='' KUBE_GIT_VERSION=v$KUBE_VERSION
      make WHAT="cmd/$what"
    ) >>"$BUILD_DIR/build.log" 2>&1 \
      || { tail -n 40 "$BUILD_DIR/build.log" >&2; die "building $what failed (full log: $BUILD_DIR/build.log)"; }
  done

  local out=$src/_output/bin b
  [[ -d $out ]] || out=$src/_output/local/bin/linux/$(go env GOARCH)
  rm -rf "$KUBE_HOME/bin.tmp"
  mkdir -p "$KUBE_HOME/bin.tmp"
  for b in "${BINARIES[@]}"; do
    [[ -x $out/$b ]] || die "build finished but $out/$b is missing (log: $BUILD_DIR/build.log)"
    cp "$out/$b" "$KUBE_HOME/bin.tmp/$b"
  done
  rm -rf "$BIN_DIR"
  mv "$KUBE_HOME/bin.tmp" "$BIN_DIR"
  # The source tree (~1.5 GB with the Go build cache) is not kept: the binaries are all we use.
  chmod -R u+w "$BUILD_DIR" 2>/dev/null || true
  rm -rf "$BUILD_DIR"
}

cmd_install() {
  local started=$SECONDS
  mkdir -p "$KUBE_HOME"
  exec 9>"$KUBE_HOME/.install.lock"
  flock 9
  # Runtime needs: etcd, openssl (certs), curl (health checks, node status), iproute2 (ss).
  if ! command -v etcd >/dev/null || ! command -v openssl >/dev/null \
      || ! command -v curl >/dev/null || ! command -v ss >/dev/null; then
    as_root
    apt_install etcd-server openssl curl iproute2 ca-certificates
  fi
  if binaries_present; then
    log "kubernetes $KUBE_VERSION binaries already cached in $BIN_DIR"
    return 0
  fi
  as_root
  log "installing kubernetes $KUBE_VERSION into $KUBE_HOME (first time: about 10 minutes)"
  apt_install golang-go rsync golang-github-modern-go-reflect2-dev dpkg-dev make
  ensure_deb_src
  build_kubernetes
  binaries_present || die "install finished without all binaries in $BIN_DIR"
  log "installed ${BINARIES[*]} into $BIN_DIR ($((SECONDS - started)) s)"
}

# ---------------------------------------------------------------- helpers for start/stop

testbed_dir() { realpath -m "${1:-$DEFAULT_DIR}"; }

# A TCP port on 127.0.0.1 that nothing listens on, outside the ephemeral range.
declare -A PICKED_PORTS=()
port_free() {
  local p=$1
  [[ -z ${PICKED_PORTS[$p]:-} ]] || return 1
  if command -v ss >/dev/null; then
    if ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then return 1; fi
  else
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then return 1; fi
  fi
  return 0
}
pick_port() { # VAR [previous]
  local var=$1 prev=${2:-} p i
  if [[ -n $prev ]] && port_free "$prev"; then p=$prev
  else
    for ((i = 0; i < 200; i++)); do
      p=$((20000 + RANDOM % 12000))
      port_free "$p" && break
      p=
    done
    [[ -n $p ]] || die "no free TCP port found"
  fi
  PICKED_PORTS[$p]=1
  printf -v "$var" '%s' "$p"
}

pid_of() { # DIR NAME -> pid if running and really that program
  local pidfile=$1/$2.pid pid pattern
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  case $2 in node-heartbeat) pattern=__heartbeat ;; *) pattern=$2 ;; esac
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
  echo "$pid"
}

load_conf() { # DIR
  # shellcheck disable=SC1091
  [[ -f $1/testbed.conf ]] && source "$1/testbed.conf"
  return 0
}

required_components() {
  echo etcd kube-apiserver kube-controller-manager kube-scheduler
  [[ ${CONF_NODE_LIFECYCLE:-0} == 1 ]] && echo node-heartbeat
  return 0
}

api() { # METHOD PATH [BODY [CONTENT-TYPE]]  (needs API_PORT, TOKEN)
  local args=(-sS -k --fail --max-time 10 -H "Authorization: Bearer $TOKEN" -X "$1")
  if [[ $# -ge 3 ]]; then
    args+=(-H "Content-Type: ${4:-application/json}" --data-binary "$3")
  fi
  curl "${args[@]}" "https://127.0.0.1:$API_PORT$2"
}

now_rfc3339() { date -u +%Y-%m-%dT%H:%M:%SZ; }

node_status_json() {
  local now; now=$(now_rfc3339)
  local res='{"cpu":"2","memory":"24Gi","pods":"110","ephemeral-storage":"100Gi"}'
  cat <<JSON
{"capacity":$res,"allocatable":$res,
 "conditions":[
  {"type":"Ready","status":"True","reason":"KubeletReady","message":"restate testbed node (no kubelet)","lastHeartbeatTime":"$now","lastTransitionTime":"$now"},
  {"type":"MemoryPressure","status":"False","reason":"KubeletHasSufficientMemory","message":"","lastHeartbeatTime":"$now","lastTransitionTime":"$now"},
  {"type":"DiskPressure","status":"False","reason":"KubeletHasNoDiskPressure","message":"","lastHeartbeatTime":"$now","lastTransitionTime":"$now"},
  {"type":"PIDPressure","status":"False","reason":"KubeletHasSufficientPID","message":"","lastHeartbeatTime":"$now","lastTransitionTime":"$now"}],
 "addresses":[{"type":"InternalIP","address":"127.0.0.1"},{"type":"Hostname","address":"$NODE_NAME"}],
 "nodeInfo":{"machineID":"","systemUUID":"","bootID":"","kernelVersion":"$(uname -r)","osImage":"restate testbed","containerRuntimeVersion":"docker://testbed","kubeletVersion":"v$KUBE_VERSION","kubeProxyVersion":"v$KUBE_VERSION","operatingSystem":"linux","architecture":"amd64"}}
JSON
}

ensure_node() {
  local node
  if api GET "/api/v1/nodes/$NODE_NAME" >/dev/null 2>&1; then
    api PATCH "/api/v1/nodes/$NODE_NAME/status" "{\"status\":$(node_status_json)}" \
      application/strategic-merge-patch+json >/dev/null
    log "node $NODE_NAME existed: status refreshed"
  else
    node="{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$NODE_NAME\",\"labels\":{
      \"kubernetes.io/hostname\":\"$NODE_NAME\",\"kubernetes.io/os\":\"linux\",\"kubernetes.io/arch\":\"amd64\",
      \"beta.kubernetes.io/os\":\"linux\",\"beta.kubernetes.io/arch\":\"amd64\"}},
      \"spec\":{},\"status\":$(node_status_json)}"
    api POST /api/v1/nodes "$node" >/dev/null
    log "node $NODE_NAME created (cpu 2, memory 24Gi, pods 110, Ready)"
  fi
  # Without the node lifecycle controller nothing would ever lift these taints (the
  # TaintNodesByCondition admission plugin, disabled above, adds not-ready on create).
  if [[ ${CONF_NODE_LIFECYCLE:-0} != 1 ]]; then
    local key
    for key in node.kubernetes.io/not-ready node.kubernetes.io/unreachable; do
      if api GET "/api/v1/nodes/$NODE_NAME" | grep -q "\"key\": *\"$key\""; then
        "$BIN_DIR/kubectl" --kubeconfig "$START_DIR/kubeconfig" taint node "$NODE_NAME" "$key-" >/dev/null
        log "removed taint $key from $NODE_NAME"
      fi
    done
  fi
}

# Background loop (RESTATE_TESTBED_NODE_LIFECYCLE=1): plays the kubelet's status heartbeat.
cmd_heartbeat() {
  local dir; dir=$(testbed_dir "${1:-}")
  load_conf "$dir"
  API_PORT=$CONF_API_PORT TOKEN=$(<"$dir/token")
  local now
  while :; do
    now=$(now_rfc3339)
    api PATCH "/api/v1/nodes/$NODE_NAME/status" \
      "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"restate testbed heartbeat\",\"lastHeartbeatTime\":\"$now\"}]}}" \
      application/strategic-merge-patch+json >/dev/null && echo "$now heartbeat ok" \
      || echo "$now heartbeat failed"
    sleep "$HEARTBEAT_INTERVAL"
  done
}

launch() { # DIR NAME CMD...
  local dir=$1 name=$2 i
  shift 2
  rm -f "$dir/$name.pid"
  echo "==== $(date -u +%FT%TZ) testbed start: $*" >>"$dir/$name.log"
  # shellcheck disable=SC2016 # expanded by the child bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/$name.pid" "$@" </dev/null >>"$dir/$name.log" 2>&1 8>&- 9>&- &
  for ((i = 0; i < 50; i++)); do
    [[ -s $dir/$name.pid ]] && return 0
    sleep 0.1
  done
  die "$name did not start (see $dir/$name.log)"
}

gen_certs() { # DIR
  local d=$1
  if [[ ! -s $d/ca.crt || ! -s $d/ca.key ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" \
      -days 3650 -subj "/CN=restate-testbed-ca" 2>/dev/null
    rm -f "$d/apiserver.crt"
  fi
  if [[ -s $d/apiserver.crt ]] && ! openssl x509 -in "$d/apiserver.crt" -noout -text 2>/dev/null \
      | grep -q "IP Address:$DOCKER_GATEWAY"; then
    rm -f "$d/apiserver.crt" # made before the Docker network's gateway was named in it
  fi
  if [[ ! -s $d/apiserver.crt || ! -s $d/apiserver.key ]]; then
    cat >"$d/apiserver.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:$DOCKER_GATEWAY,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EXT
    openssl req -newkey rsa:2048 -nodes -keyout "$d/apiserver.key" -out "$d/apiserver.csr" \
      -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
      -out "$d/apiserver.crt" -days 3650 -extfile "$d/apiserver.ext" 2>/dev/null
    rm -f "$d/apiserver.csr" "$d/ca.srl"
  fi
  if [[ ! -s $d/sa.key || ! -s $d/sa.pub ]]; then
    openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
    openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  fi
  if [[ ! -s $d/token ]]; then
    openssl rand -hex 24 >"$d/token"
  fi
  printf '%s,admin,admin,"system:masters"\n' "$(<"$d/token")" >"$d/tokens.csv"
  chmod 600 "$d"/*.key "$d/token" "$d/tokens.csv"
}

write_kubeconfigs() { # DIR
  local d=$1 token; token=$(<"$d/token")
  # For users and tests: token auth, TLS verification off (as asked for kubectl and kube-rs).
  cat >"$d/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: https://127.0.0.1:$CONF_API_PORT
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $token
contexts:
- name: testbed
  context:
    cluster: testbed
    user: admin
    namespace: default
current-context: testbed
KC
  # Same credentials, server certificate verified against DIR/ca.crt (used by the components).
  sed -e "s|    insecure-skip-tls-verify: true|    certificate-authority: $d/ca.crt|" \
    "$d/kubeconfig" >"$d/kubeconfig-verified"
  chmod 600 "$d/kubeconfig" "$d/kubeconfig-verified"
}

env_lines() { # DIR
  local d=$1
  printf 'export RESTATE_TESTBED_DIR=%q\n' "$d"
  printf 'export KUBECONFIG=%q\n' "$d/kubeconfig"
  printf 'export RESTATE_TESTBED_NODE=%q\n' "$NODE_NAME"
  printf 'export RESTATE_TESTBED_NETWORK=%q\n' "$DOCKER_NETWORK"
  printf 'export RESTATE_TESTBED_API_HOST=%q\n' "$DOCKER_GATEWAY"
  printf 'export RESTATE_TESTBED_API_PORT=%q\n' "${CONF_API_PORT:-}"
  # shellcheck disable=SC2016 # $PATH expands where the line is sourced
  printf 'export PATH=%q:"$PATH"\n' "$BIN_DIR"
}

# Running and not a zombie (the processes are reparented to init, which may reap late).
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
  [[ -n $state && $state != Z ]]
}

stop_components() { # DIR [quiet]
  local dir=$1 quiet=${2:-} name pid i any=0
  for name in node-heartbeat kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if pid=$(pid_of "$dir" "$name"); then
      any=1
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 150; i++)); do alive "$pid" || break; sleep 0.1; done
      if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
      [[ -n $quiet ]] || log "stopped $name (pid $pid)"
    fi
    rm -f "$dir/$name.pid"
  done
  [[ -n $quiet || $any == 1 ]] || log "nothing running in $dir"
  return 0
}

# The pods' network: created once with a fixed subnet so the gateway (the API server as
# the pods see it) is known before the certificate is made.
ensure_docker_network() {
  command -v docker >/dev/null || die "docker not found: the test kubelet runs pods as containers"
  local gw
  if gw=$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' "$DOCKER_NETWORK" 2>/dev/null); then
    [[ $gw == "$DOCKER_GATEWAY" ]] \
      || die "docker network $DOCKER_NETWORK has gateway '$gw', expected $DOCKER_GATEWAY: remove it (docker network rm $DOCKER_NETWORK) or set RESTATE_TESTBED_GATEWAY"
    return 0
  fi
  docker network create --driver bridge --subnet "$DOCKER_SUBNET" --gateway "$DOCKER_GATEWAY" "$DOCKER_NETWORK" >/dev/null \
    || die "could not create docker network $DOCKER_NETWORK ($DOCKER_SUBNET): another network may use the subnet; set RESTATE_TESTBED_SUBNET and RESTATE_TESTBED_GATEWAY"
  log "created docker network $DOCKER_NETWORK ($DOCKER_SUBNET, gateway $DOCKER_GATEWAY)"
}

START_DIR=
start_failed() {
  local msg=$1 name
  echo "testbed: error: $msg" >&2
  for name in "${COMPONENTS[@]}"; do
    [[ -f $START_DIR/$name.log ]] || continue
    echo "---- last 25 lines of $START_DIR/$name.log" >&2
    tail -n 25 "$START_DIR/$name.log" >&2
  done
  echo "testbed: stopping what was started (logs stay in $START_DIR)" >&2
  stop_components "$START_DIR" quiet
  exit 1
}

# Wait until CHECK (a command) succeeds; fail early when a component died.
wait_for() { # DESCRIPTION DEADLINE CHECK...
  local what=$1 deadline=$2 name
  shift 2
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    for name in $(required_components); do
      [[ -f $START_DIR/$name.pid ]] || continue
      pid_of "$START_DIR" "$name" >/dev/null || start_failed "$name exited while waiting for $what"
    done
    ((SECONDS < deadline)) || start_failed "timed out after ${START_TIMEOUT}s waiting for $what"
    sleep 0.5
  done
}

kc() { "$BIN_DIR/kubectl" --kubeconfig "$START_DIR/kubeconfig" --request-timeout=5s "$@"; }
check_etcd() { curl -sf --max-time 2 "http://127.0.0.1:$CONF_ETCD_PORT/health" | grep -q '"health":"true"'; }
check_api() { [[ $(kc get --raw /readyz 2>/dev/null) == ok ]]; }
check_healthz() { [[ $(curl -sk --max-time 2 "https://127.0.0.1:$1/healthz") == ok ]]; }
check_sa() { [[ -n $(kc -n default get serviceaccount default -o 'jsonpath={.secrets[0].name}') ]]; }

all_running() { # DIR
  local name
  for name in $(required_components); do pid_of "$1" "$name" >/dev/null || return 1; done
}

cmd_start() {
  local dir; dir=$(testbed_dir "${1:-}")
  START_DIR=$dir
  binaries_present || die "kubernetes binaries missing in $BIN_DIR: run '$0 install' first"
  local t
  for t in etcd openssl curl; do
    command -v "$t" >/dev/null || die "$t not found: run '$0 install' first"
  done
  mkdir -p "$dir"
  exec 8>"$dir/.lock"
  flock -w 300 8 || die "another start/stop holds $dir/.lock"

  load_conf "$dir"
  if [[ -f $dir/testbed.conf ]] && all_running "$dir" && check_api; then
    log "already running in $dir (API https://127.0.0.1:$CONF_API_PORT)"
    API_PORT=$CONF_API_PORT TOKEN=$(<"$dir/token")
    ensure_node
    env_lines "$dir" >"$dir/env"
    log "use it with: source $dir/env"
    return 0
  fi
  stop_components "$dir" quiet

  local started=$SECONDS deadline=$((SECONDS + START_TIMEOUT))
  ensure_docker_network
  gen_certs "$dir"
  pick_port CONF_ETCD_PORT "${CONF_ETCD_PORT:-}"
  pick_port CONF_ETCD_PEER_PORT "${CONF_ETCD_PEER_PORT:-}"
  pick_port CONF_API_PORT "${CONF_API_PORT:-}"
  pick_port CONF_CM_PORT "${CONF_CM_PORT:-}"
  pick_port CONF_SCHED_PORT "${CONF_SCHED_PORT:-}"
  CONF_NODE_LIFECYCLE=$NODE_LIFECYCLE
  cat >"$dir/testbed.conf" <<CONF
CONF_ETCD_PORT=$CONF_ETCD_PORT
CONF_ETCD_PEER_PORT=$CONF_ETCD_PEER_PORT
CONF_API_PORT=$CONF_API_PORT
CONF_CM_PORT=$CONF_CM_PORT
CONF_SCHED_PORT=$CONF_SCHED_PORT
CONF_NODE_LIFECYCLE=$CONF_NODE_LIFECYCLE
CONF
  write_kubeconfigs "$dir"
  env_lines "$dir" >"$dir/env"

  log "starting etcd on 127.0.0.1:$CONF_ETCD_PORT (data in $dir/etcd)"
  launch "$dir" etcd etcd --name testbed --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$CONF_ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$CONF_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$CONF_ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$CONF_ETCD_PEER_PORT" \
    --initial-cluster "testbed=http://127.0.0.1:$CONF_ETCD_PEER_PORT"
  wait_for "etcd health" "$deadline" check_etcd

  log "starting kube-apiserver on https://127.0.0.1:$CONF_API_PORT"
  launch "$dir" kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$CONF_ETCD_PORT" \
    --bind-address 0.0.0.0 --secure-port "$CONF_API_PORT" --insecure-port 0 \
    --advertise-address 127.0.0.1 --endpoint-reconciler-type none \
    --tls-cert-file "$dir/apiserver.crt" --tls-private-key-file "$dir/apiserver.key" \
    --client-ca-file "$dir/ca.crt" \
    --token-auth-file "$dir/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-key-file "$dir/sa.pub" \
    --service-account-signing-key-file "$dir/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --disable-admission-plugins TaintNodesByCondition \
    --allow-privileged=true --profiling=false
  wait_for "kube-apiserver /readyz" "$deadline" check_api

  log "starting kube-controller-manager and kube-scheduler"
  local controllers='*,-nodeipam,-nodelifecycle'
  [[ $CONF_NODE_LIFECYCLE == 1 ]] && controllers='*,-nodeipam'
  launch "$dir" kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig "$dir/kubeconfig-verified" \
    --authentication-kubeconfig "$dir/kubeconfig-verified" \
    --authorization-kubeconfig "$dir/kubeconfig-verified" \
    --bind-address 127.0.0.1 --secure-port "$CONF_CM_PORT" --port 0 \
    --controllers "$controllers" \
    --service-account-private-key-file "$dir/sa.key" \
    --root-ca-file "$dir/ca.crt" \
    --cluster-signing-cert-file "$dir/ca.crt" --cluster-signing-key-file "$dir/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --leader-elect=false --profiling=false
  launch "$dir" kube-scheduler "$BIN_DIR/kube-scheduler" \
    --kubeconfig "$dir/kubeconfig-verified" \
    --authentication-kubeconfig "$dir/kubeconfig-verified" \
    --authorization-kubeconfig "$dir/kubeconfig-verified" \
    --bind-address 127.0.0.1 --secure-port "$CONF_SCHED_PORT" --port 0 \
    --leader-elect=false --profiling=false
  wait_for "kube-controller-manager /healthz" "$deadline" check_healthz "$CONF_CM_PORT"
  wait_for "kube-scheduler /healthz" "$deadline" check_healthz "$CONF_SCHED_PORT"
  wait_for "ServiceAccount default/default and its token" "$deadline" check_sa

  API_PORT=$CONF_API_PORT TOKEN=$(<"$dir/token")
  ensure_node || start_failed "could not create node $NODE_NAME"
  if [[ $CONF_NODE_LIFECYCLE == 1 ]]; then
    launch "$dir" node-heartbeat bash "$(realpath "$0")" __heartbeat "$dir"
    log "node lifecycle controller on; heartbeat loop every ${HEARTBEAT_INTERVAL}s"
  fi
  log "ready in $((SECONDS - started)) s: API https://127.0.0.1:$CONF_API_PORT, logs and pids in $dir"
  log "use it with: source $dir/env   (or: eval \"\$($0 env $dir)\")"
}

cmd_stop() {
  local dir; dir=$(testbed_dir "${1:-}")
  [[ -d $dir ]] || { log "nothing running in $dir"; return 0; }
  exec 8>"$dir/.lock"
  flock -w 300 8 || die "another start/stop holds $dir/.lock"
  stop_components "$dir"
}

cmd_status() {
  local dir; dir=$(testbed_dir "${1:-}")
  START_DIR=$dir
  load_conf "$dir"
  local name pid ok=0 port
  echo "testbed dir: $dir"
  for name in "${COMPONENTS[@]}"; do
    case $name in
      etcd) port=${CONF_ETCD_PORT:-} ;;
      kube-apiserver) port=${CONF_API_PORT:-} ;;
      kube-controller-manager) port=${CONF_CM_PORT:-} ;;
      kube-scheduler) port=${CONF_SCHED_PORT:-} ;;
      *) port= ;;
    esac
    if pid=$(pid_of "$dir" "$name"); then
      printf '  %-24s running  pid %-8s %s\n' "$name" "$pid" "${port:+127.0.0.1:$port}"
    elif [[ $name == node-heartbeat && ${CONF_NODE_LIFECYCLE:-0} != 1 ]]; then
      printf '  %-24s not used (node lifecycle controller disabled)\n' "$name"
    else
      printf '  %-24s stopped\n' "$name"
    fi
  done
  if all_running "$dir" && [[ -f $dir/testbed.conf ]]; then
    if check_api; then
      echo "  API https://127.0.0.1:$CONF_API_PORT ready; nodes:"
      kc get nodes --no-headers 2>/dev/null | sed 's/^/    /'
    else
      echo "  API https://127.0.0.1:$CONF_API_PORT not ready"
      ok=3
    fi
  else
    ok=3
  fi
  return $ok
}

cmd_env() {
  local dir; dir=$(testbed_dir "${1:-}")
  [[ -f $dir/kubeconfig ]] || log "warning: $dir/kubeconfig does not exist yet (run start)"
  env_lines "$dir"
}

usage() {
  cat >&2 <<USAGE
usage: $0 COMMAND [DIR]
  install        apt packages + build kube-apiserver, kube-controller-manager, kube-scheduler,
                 kubectl $KUBE_VERSION once into $BIN_DIR
  start  [DIR]   start etcd, apiserver, controller-manager, scheduler; create node $NODE_NAME;
                 write DIR/kubeconfig and DIR/env
  stop   [DIR]   kill what start started
  status [DIR]   what runs (exit 0 when all of it runs, 3 otherwise)
  env    [DIR]   print the export lines (KUBECONFIG, PATH, ...)
DIR defaults to $DEFAULT_DIR. Environment: RESTATE_TESTBED_CACHE, RESTATE_TESTBED_START_TIMEOUT
(120), RESTATE_TESTBED_NODE_LIFECYCLE (0; 1 = node lifecycle controller + heartbeat loop).
USAGE
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
  install) cmd_install "$@" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  env) cmd_env "$@" ;;
  __heartbeat) cmd_heartbeat "$@" ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
