#!/usr/bin/env bash
# Choose MLX's device for the test suite on a GitHub-hosted runner (tests.yml): Metal when MLX
# can run a computation on it, else MLX's CPU device (docs/runner.md, "The macOS tests leg").
# Usage: scripts/ci-mlx-device.sh PYTHON   (a python with MLX installed, e.g. .venv/bin/python)
# The probe runs in a child process, so a crash inside MLX is reported, not inherited.
# Out: one line saying which device; under GitHub Actions, PYTHONPATH=scripts/ci-mlx-cpu is
#      appended to $GITHUB_ENV for the CPU case (its sitecustomize sets the default device).
# Exit: 0 a device was chosen; 1 MLX does not even import (no device would help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: scripts/ci-mlx-device.sh PYTHON" >&2; exit 2; }
python=$1

probe() {  # $1: the device to run on; prints MLX's version and Metal's availability
  "$python" -c '
import sys
import mlx.core as mx
device = mx.gpu if sys.argv[1] == "gpu" else mx.cpu
mx.eval(mx.sum(mx.ones((64, 64)) @ mx.ones((64, 64)), stream=device))
print(f"MLX {mx.__version__}, mx.metal.is_available()={mx.metal.is_available()}")' "$1" 2>&1
}

status=0
out=$(probe gpu) || status=$?
if [ "$status" -eq 0 ]; then
  echo "ci-mlx-device: Metal works ($out): the tests run on MLX's default device"
  exit 0
fi
echo "ci-mlx-device: MLX's Metal backend failed (exit $status): ${out##*$'\n'}"
cpu_status=0
cpu_out=$(probe cpu) || cpu_status=$?
if [ "$cpu_status" -ne 0 ]; then
  echo "::error title=MLX::MLX fails on this runner even on its CPU device (exit $cpu_status): ${cpu_out##*$'\n'}"
  exit 1
fi
echo "::warning title=MLX::no usable Metal device on this runner: the tests run on MLX's CPU device ($cpu_out)"
if [ -n "${GITHUB_ENV:-}" ]; then
  echo "PYTHONPATH=$root/scripts/ci-mlx-cpu${PYTHONPATH:+:$PYTHONPATH}" >>"$GITHUB_ENV"
fi
