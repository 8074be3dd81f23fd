#!/usr/bin/env bash
# GPU measurements on the lent NVIDIA machine (MLX CUDA backend), all in one call.
# Prerequisites (see docs/perf.md): ../shared/device/stage-mlx-cuda.sh has filled .device/a and
# .device/b; the mlx-lm wheel is in .whl/ (pip download --no-deps mlx-lm==0.32.2 -d .whl);
# call 1 carried .device/a and ran `bash .device/a/install-mlx-cuda.sh park`.
# This is call 2, carrying .device/b and .whl. Results land in $OUT (at most 8 files come back).
set -uo pipefail
source scripts/device/gpu-env.sh
# correctness on the GPU: restored caches continue exactly (tiny real models)
python3 -m pytest -q -p no:cacheprovider tests/test_copying.py tests/test_pool.py tests/test_engine_restore.py \
  tests/test_restore_costs.py 2>&1 | tail -n 5 | tee "$OUT/pytest-gpu.txt"
python3 scripts/device/copy_breakdown.py 2048 8192 32768 2>&1 | tee "$OUT/breakdown.txt"
python3 scripts/store_python_time.py 2>&1 | tee "$OUT/store-python.txt"  # this host's Python, copies stubbed
for run in 1 2 3; do  # three times: the spread between runs is part of the result
  python3 -m kvbench.cli costs --contexts 2048,8192,32768 --runs 20 --zero-copy-runs 1000 --json "$OUT/costs-$run.json" 2>&1
done
python3 -m kvbench.cli exp006 --strategy zero_copy concat gather --copy-runs 100 --out "$OUT/exp006" 2>&1 | grep -E "verdict|p50"
