#!/usr/bin/env bash
# The test command: sets up .venv with the test extras, then runs pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=$(bash "$root/scripts/venv.sh" test | tail -n 1)
cd "$root"
exec "$py" -m pytest "$@"
