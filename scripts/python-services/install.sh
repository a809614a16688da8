#!/usr/bin/env bash
# Installs the Python example services' dependencies (examples/python-services/
# requirements.txt: PyPI restate-sdk and hypercorn) into a virtualenv kept outside the
# checkout, so fresh clones (CI) reuse it. Prints the venv's path. Idempotent and quick
# when the pinned versions are already there.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
requirements="$here/examples/python-services/requirements.txt"
venv="${RESTATE_PYTHON_VENV:-$HOME/.cache/restate-cluster/python-services-venv}"
wanted="$(grep -v '^#' "$requirements" | sed '/^$/d' | tr 'A-Z' 'a-z' | sort)"
have="$("$venv/bin/pip" freeze 2>/dev/null | tr 'A-Z' 'a-z' | sort || true)"
if [ -x "$venv/bin/hypercorn" ] && [ -z "$(comm -23 <(echo "$wanted") <(echo "$have"))" ]; then
  echo "$venv"
  exit 0
fi
echo "python-services: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
echo "$venv"
