"""Puts MLX on its CPU device in every Python process started with this folder on PYTHONPATH.

scripts/ci-mlx-device.sh adds it on a GitHub-hosted macOS runner whose VM offers MLX no usable
Metal device, so that the test suite runs there on the CPU. Processes without MLX are untouched.
"""

import importlib.util

if importlib.util.find_spec("mlx") is not None:
    import mlx.core as mx

    mx.set_default_device(mx.cpu)
