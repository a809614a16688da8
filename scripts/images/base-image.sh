#!/usr/bin/env bash
# Makes the local base image `debian:bookworm-slim` on a machine that cannot pull from a
# registry, so that docker/*.Dockerfile can say `FROM debian:bookworm-slim` exactly as
# they do everywhere else.
#
#   scripts/images/base-image.sh            # idempotent
#
# 1. `docker image inspect debian:bookworm-slim` succeeds: nothing to do.
# 2. The cached rootfs tarball exists: `docker import` it.
# 3. Otherwise: apt-get install debootstrap, `debootstrap --variant=minbase bookworm`
#    (plus ca-certificates) from the mirror of the host's apt sources into a temp dir,
#    tar it into the cache, import it.
#
# Environment:
#   RESTATE_IMAGE_CACHE    cache dir (default ~/.cache/restate-cluster/images); the tarball
#                          is $RESTATE_IMAGE_CACHE/debian-bookworm-minbase.tar
#   RESTATE_DEBIAN_MIRROR  Debian mirror (default: the first `URIs:` line of
#                          /etc/apt/sources.list.d/debian.sources, else the first `deb` line
#                          of /etc/apt/sources.list)
#   RESTATE_BASE_IMAGE     tag to create (default debian:bookworm-slim)
set -euo pipefail

BASE_IMAGE=${RESTATE_BASE_IMAGE:-debian:bookworm-slim}
CACHE_DIR=${RESTATE_IMAGE_CACHE:-$HOME/.cache/restate-cluster/images}
TARBALL=$CACHE_DIR/debian-bookworm-minbase.tar
SUITE=bookworm
# ca-certificates: the node talks to S3 over TLS. libc6, libgcc-s1, libstdc++6 (what the
# release binaries link, see `ldd`) are part of minbase already; named to make it explicit.
INCLUDE=ca-certificates,libgcc-s1,libstdc++6

log() { echo "base-image: $*" >&2; }
die() { echo "base-image: error: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found (apt-get install docker.io)"
docker_err=$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null) \
  || die "the Docker engine does not answer (is dockerd running?): ${docker_err:-no server version}"

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "$BASE_IMAGE present ($(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" | cut -c1-19)), nothing to do"
  exit 0
fi

import_tarball() {
  log "importing $TARBALL as $BASE_IMAGE"
  # The same entry command as the official image; import sets no PATH, so set it too.
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase --include=$INCLUDE $SUITE (scripts/images/base-image.sh)" \
    "$TARBALL" "$BASE_IMAGE" >/dev/null
  log "done: $BASE_IMAGE $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
}

if [[ -s $TARBALL ]]; then
  import_tarball
  exit 0
fi

# ---------------------------------------------------------------- debootstrap

[[ $(id -u) == 0 ]] || die "debootstrap needs root (run as root, or put a tarball at $TARBALL)"

mirror() {
  if [[ -n ${RESTATE_DEBIAN_MIRROR:-} ]]; then
    echo "$RESTATE_DEBIAN_MIRROR"
    return
  fi
  local m=""
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $m && -r /etc/apt/sources.list ]]; then
    m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  echo "$m"
}
MIRROR=$(mirror)
[[ -n $MIRROR ]] || die "no Debian mirror found: no URIs: line in /etc/apt/sources.list.d/debian.sources" \
  "and no deb line in /etc/apt/sources.list; set RESTATE_DEBIAN_MIRROR"
log "mirror: $MIRROR"
if command -v curl >/dev/null; then
  curl -fsS -o /dev/null --max-time 30 "$MIRROR/dists/$SUITE/Release" \
    || die "mirror $MIRROR does not serve dists/$SUITE/Release (set RESTATE_DEBIAN_MIRROR)"
fi

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || die "apt-get install debootstrap failed"
fi

mkdir -p "$CACHE_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/restate-base-image.XXXXXX")
ROOTFS=$WORK/rootfs
cleanup() {
  # Never leave (or delete through) a mount debootstrap left behind.
  local mnt
  for mnt in $(awk -v r="$ROOTFS" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$mnt" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

log "debootstrap --variant=minbase --include=$INCLUDE $SUITE (takes a minute or two)"
start=$(date +%s)
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
  tail -n 20 "$WORK/debootstrap.log" >&2
  [[ -f $ROOTFS/debootstrap/debootstrap.log ]] && tail -n 20 "$ROOTFS/debootstrap/debootstrap.log" >&2
  die "debootstrap failed (log above)"
fi
log "debootstrap took $(($(date +%s) - start)) s"

# Slim it the way the official -slim images do: no apt lists or caches, docs, man pages,
# locales; the package metadata stays so `apt-get update && apt-get install` still works.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
  "$ROOTFS"/var/log/* "$ROOTFS"/tmp/* "$ROOTFS"/debootstrap
find "$ROOTFS"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$ROOTFS"/usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/*
# The engine provides /dev, /etc/hostname, /etc/hosts and /etc/resolv.conf at run time.
rm -rf "${ROOTFS:?}"/dev/*
: >"$ROOTFS/etc/resolv.conf"
echo "$SUITE" >"$ROOTFS/etc/hostname"
# apt inside the image should not keep package caches or pull docs back in.
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF

for lib in libc.so.6 libgcc_s.so.1 libstdc++.so.6 libm.so.6; do
  [[ -e $ROOTFS/lib/x86_64-linux-gnu/$lib || -e $ROOTFS/usr/lib/x86_64-linux-gnu/$lib ]] \
    || ls "$ROOTFS"/usr/lib/*/"$lib" >/dev/null 2>&1 || die "rootfs lacks $lib"
done

log "writing $TARBALL"
tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.tmp.$$" . || { rm -f "$TARBALL.tmp.$$"; die "tar failed"; }
mv -f "$TARBALL.tmp.$$" "$TARBALL"
log "tarball $(du -h "$TARBALL" | cut -f1)"

import_tarball
