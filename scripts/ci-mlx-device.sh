#!/usr/bin/env bash
# Choose MLX's device for the test suite on a GitHub-hosted runner (tests.yml): Metal when MLX
# can run a computation on it, else MLX's CPU device, else none (docs/runner.md, "The macOS
# tests leg"). Usage: scripts/ci-mlx-device.sh PYTHON   (a python with MLX, e.g. .venv/bin/python)
# The probes run in child processes, so a crash inside MLX is reported, not inherited. Without
# Metal, MLX may abort while it imports (its Metal device is made at import), before any Python
# code could choose the CPU: then no device works, and only the tests that need no MLX can run.
# Out: one line saying which device; under GitHub Actions, MLX_DEVICE=metal|cpu|none appended
#      to $GITHUB_ENV, and for cpu also PYTHONPATH=scripts/ci-mlx-cpu (its sitecustomize makes
#      the CPU MLX's default device).
# Exit: 0 (the choice is in the output); 2 bad usage.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: scripts/ci-mlx-device.sh PYTHON" >&2; exit 2; }
python=$1

probe() {  # $1: gpu or cpu; prints MLX's version and Metal's availability
  "$python" -c '
import sys
import mlx.core as mx
device = mx.gpu if sys.argv[1] == "gpu" else mx.cpu
mx.eval(mx.sum(mx.ones((64, 64)) @ mx.ones((64, 64)), stream=device))
print(f"MLX {mx.__version__}, mx.metal.is_available()={mx.metal.is_available()}")' "$1" 2>&1
}

choose() {  # $1: metal, cpu or none
  [ -z "${GITHUB_ENV:-}" ] || echo "MLX_DEVICE=$1" >>"$GITHUB_ENV"
  if [ "$1" = cpu ] && [ -n "${GITHUB_ENV:-}" ]; then
    echo "PYTHONPATH=$root/scripts/ci-mlx-cpu${PYTHONPATH:+:$PYTHONPATH}" >>"$GITHUB_ENV"
  fi
}

status=0
out=$(probe gpu) || status=$?
if [ "$status" -eq 0 ]; then
  echo "ci-mlx-device: Metal works ($out): the tests run on MLX's default device"
  choose metal
  exit 0
fi
echo "ci-mlx-device: MLX's Metal backend failed (exit $status): $(printf '%s\n' "$out" | tail -n 1)"
cpu_status=0
cpu_out=$(probe cpu) || cpu_status=$?
if [ "$cpu_status" -ne 0 ]; then
  echo "::warning title=MLX::MLX does not run on this runner, not even on its CPU device (exit $cpu_status: $(printf '%s\n' "$cpu_out" | tail -n 1)): only the tests that need no MLX run here"
  choose none
  exit 0
fi
echo "::warning title=MLX::no usable Metal device on this runner: the tests run on MLX's CPU device ($cpu_out)"
choose cpu
