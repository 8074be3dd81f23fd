#!/usr/bin/env bash
# The store's numbers on the lent NVIDIA machine (MLX CUDA backend), in one call: correctness
# through mlx-lm's generation APIs on the GPU, `kvcache-bench costs` (the store's copies over a
# plain copy, its bookkeeping in ms) twice, and the same-run A/B of store and zero-copy restore
# against an older commit's package.
# Prerequisites (docs/perf.md): ../shared/device/stage-mlx-cuda.sh filled .device/a and
# .device/b; the mlx-lm wheel is in .whl/ (pip download --no-deps mlx-lm==0.32.2 -d .whl);
# `git archive OLD kvcache >.device/old/kvcache.tar`; call 1 carried .device/a and ran
# `bash .device/a/install-mlx-cuda.sh park`. This is call 2, carrying .device/b, .device/old, .whl.
set -uo pipefail
source scripts/device/gpu-env.sh
python3 -m pytest -q -p no:cacheprovider tests/test_engine_client.py tests/test_engine_restore.py \
  tests/test_copying.py tests/test_pool.py 2>&1 | tail -n 5 | tee "$OUT/pytest-gpu.txt"
for run in 1 2; do  # twice: the spread between runs is part of the result
  python3 -m kvbench.cli costs --contexts 2048,8192,32768 --runs 20 --zero-copy-runs 500 --json "$OUT/costs-$run.json" 2>&1 | tail -n 30
done
python3 scripts/ab_versions.py .device/old/kvcache.tar --contexts 2048,8192,32768 --rounds 30 --zero-copy-rounds 300 2>&1 | tee "$OUT/ab.txt"
