#!/usr/bin/env bash
# Installs the Python clients of chserver's conformance suite into a virtual environment at
# .cache/chserver-py (run by `make deps`; idempotent: nothing happens when the pinned
# requirements are already installed).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
venv="$root/.cache/chserver-py"
req="$root/deploy/local/chserver/internal/conformance/python/requirements.txt"
stamp="$venv/.requirements"
if [ -f "$stamp" ] && cmp -s "$stamp" "$req" && "$venv/bin/python" -c 'import clickhouse_connect, clickhouse_driver, pyarrow' 2>/dev/null; then
  exit 0
fi
command -v python3 >/dev/null || { echo "pyclients: python3 is needed" >&2; exit 1; }
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$stamp"
echo "pyclients: $(grep -v '^#' "$req" | tr '\n' ' ')in $venv"
