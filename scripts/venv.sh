#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv with the project installed editable,
# plus the extras named as arguments (e.g. `scripts/venv.sh test`), and the tracker
# (tracker/, kvcache-tracker) editable beside it. Idempotent and quick
# when nothing changed. Prints the venv's python path on its last line.
# Runs under macOS's /bin/bash 3.2 with BSD tools (docs/runner.md): the hash is Python's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
extras=$(IFS=,; echo "$*")
die() { echo "venv.sh: $*" >&2; exit 2; }

command -v python3 >/dev/null || die "no python3 on PATH (Python >= 3.10 is needed to make $venv)"
digest=$(python3 -c 'import hashlib, sys
print(hashlib.sha1(b"".join(open(p, "rb").read() for p in sys.argv[1:])).hexdigest()[:12])' \
  "$root/setup.cfg" "$root/pyproject.toml" "$root/tracker/pyproject.toml") ||
  die "could not hash setup.cfg, pyproject.toml and tracker/pyproject.toml"
stamp="$venv/.installed-$digest-${extras:-none}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || die "python3 -m venv $venv failed (its message is above)"
fi
if [ ! -f "$stamp" ]; then
  echo "setting up $venv (extras: ${extras:-none})" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2 || die "pip could not upgrade itself in $venv"
  "$venv/bin/python" -m pip install -q -e "$root${extras:+[$extras]}" -e "$root/tracker" >&2 ||
    die "pip install -e '.${extras:+[$extras]}' -e tracker failed (its message is above)"
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
echo "$venv/bin/python"
