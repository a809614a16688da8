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
  orig=$(ls "$dl"/kubernetes_*.orig.tar.* 2>/dev/null | head -n 1)
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
        GOFLAGS= KUBE_GIT_VERSION=v$KUBE_VERSION
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

case ${1:-} in
  install) shift; cmd_install "$@" ;;
  *) echo "usage: $0 install|start [DIR]|stop [DIR]|status [DIR]|env [DIR]" >&2; exit 2 ;;
esac
