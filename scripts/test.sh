#!/usr/bin/env bash
# The test command: sets up .venv with the test extras, then runs pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=$(bash "$root/scripts/venv.sh" test | tail -n 1) ||
  { echo "test.sh: scripts/venv.sh test failed (its message is above)" >&2; exit 2; }
cd "$root"
exec "$py" -m pytest "$@"
