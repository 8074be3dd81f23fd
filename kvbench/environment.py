"""Where a measurement happened (EXP-006, ``costs``, an A/B): machine, MLX backend and device,
versions, git commit.

Everything here must work on a bare GPU machine where only mlx, mlx-lm and numpy are
importable (an asv environment has no matplotlib: ``benchmarks/bench_bandwidth.py`` imports
``restore_costs``, which imports this) and the tree may not be a git checkout: anything not
found reads "unknown".
"""

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import mlx.core as mx
import mlx_lm

UNKNOWN = "unknown"


def environment():
    """A JSON-ready description of this machine, its MLX backend and the code's versions.

    Call it when the run starts: the git commit is that of the code that runs.
    """
    return {
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
        },
        "backend": backend(),
        "versions": {
            "mlx": mx.__version__,
            "mlx-lm": getattr(mlx_lm, "__version__", None) or _version("mlx-lm"),
            "kvcache": _version("kvcache"),
            "python": platform.python_version(),
        },
        "git": git_state(Path(__file__).resolve().parent),
    }


def backend():
    """MLX's default device, which backends are available, and what MLX says of the device."""
    info = {
        "default_device": str(mx.default_device()),
        "metal_available": _available(getattr(mx, "metal", None)),
        "cuda_available": _available(getattr(mx, "cuda", None)),
    }
    try:
        info["device_info"] = {k: _plain(v) for k, v in mx.device_info().items()}
    except (AttributeError, RuntimeError):
        info["device_info"] = UNKNOWN
    return info


def git_state(directory):
    """``{"commit", "dirty"}`` of the checkout holding ``directory``; "unknown" without git.

    ``dirty``: tracked files differ from the commit (untracked files are not counted).
    """
    commit = _git(directory, "rev-parse", "HEAD")
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or UNKNOWN, "dirty": UNKNOWN if status is None else bool(status)}


def _git(directory, *args):
    try:
        done = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def load_average():
    """1-, 5- and 15-minute load averages (how busy the machine is), or "unknown"."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return UNKNOWN


def _available(module):
    try:
        return bool(module.is_available())
    except (AttributeError, RuntimeError):
        return False


def _version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def _plain(value):
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)
