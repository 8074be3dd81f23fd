"""p95 budgets: the most milliseconds a benchmark's p95 may take.

The file (``benchmarks/budgets.json``; ``//`` comments allowed, as in asv.conf.json)::

    {"budgets_ms": {"bench_reconstruct.Reconstruct8k.time_reconstruct_8k('zero_copy')": 5.0}}

A key is a benchmark's asv name with its parameters as asv shows them (the budget of that
combination), or without them (every combination of the benchmark). The first wins.
"""

import math
import os

from asv.util import UserError as AsvUserError
from asv.util import load_json

from .errors import UserError

DEFAULT_BUDGETS = os.path.join("benchmarks", "budgets.json")


def load_budgets(path):
    """The ``{name: ms}`` budgets in ``path``; ``UserError`` naming what is wrong with it."""
    try:
        data = load_json(path, js_comments=True)
    except (OSError, AsvUserError, ValueError) as error:
        raise UserError(f"cannot read budgets file {path}: {' '.join(str(error).split())}")
    budgets = data.get("budgets_ms") if isinstance(data, dict) else None
    if not isinstance(budgets, dict):
        raise UserError(
            f'malformed budgets file {path}: expected {{"budgets_ms": {{"benchmark name": milliseconds}}}}'
        )
    for name, ms in budgets.items():
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
            raise UserError(
                f"malformed budgets file {path}: the budget of {name} must be a positive number of milliseconds, not {ms!r}"
            )
    return {name: float(ms) for name, ms in budgets.items()}


def budget_for(budgets, benchmark):
    """The budget of ``benchmark`` (a name with parameters), or None."""
    if benchmark in budgets:
        return budgets[benchmark]
    return budgets.get(benchmark.split("(", 1)[0])


def unused_budgets(budgets, benchmarks):
    """Budget keys that match none of ``benchmarks`` (likely typos)."""
    bare = {b.split("(", 1)[0] for b in benchmarks}
    return sorted(name for name in budgets if name not in benchmarks and name not in bare)
