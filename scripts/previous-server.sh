#!/usr/bin/env bash
# Prints the path of the `restate-server` of the previous release (a debug build, or with
# `release` an optimized one for the benchmarks' before/after rows), for the upgrade test
# (e2e/tests/upgrade.rs): the last commit before logs moved to disk and partition log
# records became binary (envelope format 1 = JSON, loglet records in the raft state
# machine's memory and snapshots). Built once from this clone's history into
# ~/.cache/restate-cluster/previous/<commit>/ and reused after.
#
# The build shares the cargo target directory, so registry crates are not compiled again.
# Cargo names a workspace crate's artifacts by name, version and path relative to the
# workspace, the same for both trees: the previous tree's crates get their own version
# (0.0.0-previous) first, or each build would take the other's artifacts for its own. Since
# cargo copies each binary it builds to the directory's `debug/`, this build's binaries
# are linked there again afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

commit=770a49235eedfc6493f17ac3baaf923d0035a80b
profile="${1:-debug}"
case "$profile" in
  debug) cargo_profile=() ;;
  release) cargo_profile=(--release) ;;
  *) echo "usage: $0 [debug|release]" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/restate-cluster/target}"
cache="$HOME/.cache/restate-cluster/previous/$commit"
binary="$cache/restate-server"
[ "$profile" = release ] && binary="$cache/release/restate-server"

if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null && [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  echo "previous-server: this clone is shallow; fetching its history for ${commit:0:12}" >&2
  git fetch --quiet --unshallow || true
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "previous-server: commit $commit (the previous release) is not in this clone's history;" \
    "fetch it (git fetch --unshallow) or set RESTATE_PREVIOUS_SERVER to a restate-server built from it" >&2
  exit 1
fi

echo "previous-server: building restate-server ($profile) at ${commit:0:12} (once; cached in $cache)" >&2
src="$cache/src"
rm -rf "$src"
mkdir -p "$src"
git archive "$commit" | tar -x -C "$src"
sed -i 's/^version = "0.1.0"$/version = "0.0.0-previous"/' "$src/Cargo.toml"
grep -q '^version = "0.0.0-previous"$' "$src/Cargo.toml" || {
  echo "previous-server: could not set the previous tree's workspace version in $src/Cargo.toml" >&2
  exit 1
}
(cd "$src" && cargo build "${cargo_profile[@]}" --bin restate-server) >&2
mkdir -p "$(dirname "$binary")"
cp "$CARGO_TARGET_DIR/$profile/restate-server" "$binary.partial"
mv "$binary.partial" "$binary"
rm -rf "$src"
cargo build "${cargo_profile[@]}" --workspace --bins >&2
echo "$binary"
