#!/usr/bin/env bash
# Installs the system packages the build needs when any is missing (Debian/Ubuntu):
# RocksDB's bindgen needs libclang, tonic/prost code generation needs protoc; the tests
# make keys and certificates with openssl (as the docs tell users to) and query with psql.
# Used by `make build`/`make run` and by .ci/run; does nothing when all are present.
set -euo pipefail

packages=(clang libclang-dev protobuf-compiler make openssl postgresql-client)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "the build needs: ${missing[*]} (libclang for RocksDB's bindgen, protoc for the gRPC code)." >&2
  echo "Install them with your system's package manager, then run make again." >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "the build needs: ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  }
  sudo=(sudo)
fi
echo "installing the build's system packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
