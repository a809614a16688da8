#!/usr/bin/env bash
# Builds the project's container images from host-built release binaries (no Rust builder
# image: nothing can be pulled here, and the host build is cached anyway).
#
#   scripts/images/build.sh [--binaries DIR] [--tag TAG]
#
#   restate-cluster:dev           docker/Dockerfile                  restate-server restatectl restate
#   restate-example-services:dev  docker/example-services.Dockerfile example-services
#   restate-operator:dev          docker/operator.Dockerfile         restate-operator (only if built)
#
# DIR defaults to ${CARGO_TARGET_DIR:-~/.cache/restate-cluster/target}/release. The base
# image debian:bookworm-slim comes from scripts/images/base-image.sh (run first). Each image
# is built from a temp context holding just its binaries.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/restate-cluster/target}/release
TAG=dev

log() { echo "images: $*" >&2; }
die() { echo "images: error: $*" >&2; exit 1; }
usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --binaries) [[ $# -ge 2 ]] || die "--binaries needs a directory"; BIN_DIR=$2; shift 2 ;;
    --binaries=*) BIN_DIR=${1#*=}; shift ;;
    --tag) [[ $# -ge 2 ]] || die "--tag needs a value"; TAG=$2; shift 2 ;;
    --tag=*) TAG=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[[ -d $BIN_DIR ]] || die "no binaries directory $BIN_DIR: run \`cargo build --release --bins\` first (or pass --binaries DIR)"
BIN_DIR=$(cd "$BIN_DIR" && pwd)

missing=()
for bin in restate-server restatectl restate example-services; do
  [[ -x $BIN_DIR/$bin ]] || missing+=("$bin")
done
[[ ${#missing[@]} == 0 ]] \
  || die "missing in $BIN_DIR: ${missing[*]}: run \`cargo build --release --bins\` first (or pass --binaries DIR)"

"$ROOT/scripts/images/base-image.sh"

CONTEXT_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/restate-images.XXXXXX")
trap 'rm -rf "$CONTEXT_ROOT"' EXIT

# build IMAGE DOCKERFILE BINARY...
build() {
  local image=$1 dockerfile=$2
  shift 2
  local context=$CONTEXT_ROOT/${image%%:*} bin
  mkdir -p "$context"
  for bin in "$@"; do
    [[ -x $BIN_DIR/$bin ]] || die "missing $BIN_DIR/$bin: run \`cargo build --release --bins\` first (or pass --binaries DIR)"
    # A hard link when on the same filesystem, else a copy; never touches the original.
    ln "$BIN_DIR/$bin" "$context/$bin" 2>/dev/null || cp "$BIN_DIR/$bin" "$context/$bin"
  done
  log "building $image from $(basename "$dockerfile") ($*; $(du -shL "$context" | cut -f1) context)"
  local start=$SECONDS
  # The classic builder and BuildKit both take this; the Dockerfiles need no BuildKit feature.
  if ! docker build --file "$dockerfile" --tag "$image" \
      --label "org.opencontainers.image.source=restate-cluster" \
      --label "org.opencontainers.image.revision=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
      "$context" >"$CONTEXT_ROOT/build.log" 2>&1; then
    tail -n 30 "$CONTEXT_ROOT/build.log" >&2
    die "docker build of $image failed (output above)"
  fi
  log "built $image in $((SECONDS - start)) s, $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}')"
}

build "restate-cluster:$TAG" "$ROOT/docker/Dockerfile" restate-server restatectl restate
build "restate-example-services:$TAG" "$ROOT/docker/example-services.Dockerfile" example-services
if [[ -x $BIN_DIR/restate-operator ]]; then
  build "restate-operator:$TAG" "$ROOT/docker/operator.Dockerfile" restate-operator
else
  log "skipping restate-operator:$TAG (no $BIN_DIR/restate-operator yet)"
fi
