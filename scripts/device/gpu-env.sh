# shellcheck shell=bash
# Sourced by the measuring scripts in scripts/device/ (call 2 of the device recipe, docs/perf.md):
# installs the carried mlx-lm wheel, MLX's CUDA backend from .device/b, and records the GPU.
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1
source .device/b/install-mlx-cuda.sh || exit 1
export PYTHONPATH="$PYTHONPATH:$PWD:/tmp/site"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
