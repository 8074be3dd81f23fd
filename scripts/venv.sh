#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv with the project installed editable,
# plus the extras named as arguments (e.g. `scripts/venv.sh test`). Idempotent and quick
# when nothing changed. Prints the venv's python path on its last line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
extras=$(IFS=,; echo "$*")
stamp="$venv/.installed-$(cat "$root/setup.cfg" "$root/pyproject.toml" | sha1sum | cut -c1-12)-${extras:-none}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ]; then
  echo "setting up $venv (extras: ${extras:-none})" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -e "$root${extras:+[$extras]}" >&2
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
echo "$venv/bin/python"
