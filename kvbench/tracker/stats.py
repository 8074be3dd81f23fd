"""The tracker's statistics: pure functions over samples (any unit) and p95 series.

- ``p95_with_ci``: p95 by linear interpolation (numpy's default) and a distribution-free
  order-statistic confidence interval (``asv_runner.statistics.quantile_ci``: the smallest
  pair of order statistics whose binomial coverage is at least the level; an end is +-inf
  when there are too few samples to bound it).
- ``p95_ratio_ci``: percentile-bootstrap interval of p95(head) / p95(base), seeded, so the
  same samples always give the same interval.
- ``find_steps`` / ``find_over_budget``: the confirmed-step rules on a p95 series (see their
  docstrings). asv's Potts fit (``asv.step_detect``) was tried first: on the short series a
  CI run produces (under ~8 commits) it often fits one level per commit, so it is not used.
"""

from dataclasses import dataclass

import numpy as np
from asv_runner.statistics import quantile_ci

P95 = 0.95
CI_LEVEL = 0.95
RATIO_CI_LEVEL = 0.90  # two-sided 90%: its lower end is a one-sided 95% bound
BOOTSTRAP_RESAMPLES = 2000
CONFIRM_WINDOW = 2  # commits compared on each side of a step: the step's own and one later


def p95(samples):
    """The 95th percentile of ``samples`` (linear interpolation between order statistics)."""
    assert len(samples) > 0, "p95 of no samples: this is a bug in the caller"
    return float(np.quantile(np.asarray(samples, dtype=float), P95))


def p95_with_ci(samples, level=CI_LEVEL):
    """``(p95, low, high)``: the p95 and an order-statistic CI of coverage >= ``level``.

    ``low`` is -inf or ``high`` +inf where the samples are too few to bound that side
    (``high`` needs roughly 60 samples at 95%).
    """
    _, (low, high) = quantile_ci(list(map(float, samples)), P95, alpha_min=1 - level)
    return p95(samples), float(low), float(high)


def p95_ratio_ci(base, head, level=RATIO_CI_LEVEL, resamples=BOOTSTRAP_RESAMPLES, seed=0):
    """``(ratio, low, high)``: p95(head) / p95(base) and its percentile-bootstrap interval.

    Each resample draws ``len(base)`` base samples and ``len(head)`` head samples with
    replacement; ``low``/``high`` are the (1 - level)/2 and (1 + level)/2 quantiles of the
    resampled ratios. Both sample sets must be non-empty with a positive p95.
    """
    base, head = np.asarray(base, dtype=float), np.asarray(head, dtype=float)
    rng = np.random.default_rng(seed)
    base_p95 = np.quantile(rng.choice(base, (resamples, base.size)), P95, axis=1)
    head_p95 = np.quantile(rng.choice(head, (resamples, head.size)), P95, axis=1)
    ratios = head_p95 / base_p95
    low, high = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return p95(head) / p95(base), float(low), float(high)


def is_significant_regression(ratio_low, rise, threshold, min_rise=0.0):
    """The gate's rule: the ratio's lower CI end is above ``1 + threshold`` and the p95 rose
    (``rise`` = p95 after - p95 before) by more than ``min_rise``."""
    return ratio_low > 1 + threshold and rise > min_rise


@dataclass(frozen=True)
class Step:
    """An upward step at ``index``: ``before``/``after`` are the indices the rule compared."""

    index: int
    before: tuple
    after: tuple


def find_steps(values, threshold=0.10, min_rise=0.0, window=CONFIRM_WINDOW):
    """Upward steps in a p95 series (branch order, oldest first; None = not measured).

    The confirmed-step rule, over measured points only: point ``i`` is a step when each of
    the ``window`` points from ``i`` on is more than ``threshold`` (relative) and more than
    ``min_rise`` (absolute) above every one of the (up to) ``window`` points before ``i``.
    So a step needs ``window - 1`` later commits to confirm it, and one slow commit (at the
    tip, or between normal ones) is never a step; a step later undone is still reported
    (it is history). At most one point of a clean step qualifies: the point after it has a
    slow point before it.
    """
    measured = [(i, v) for i, v in enumerate(values) if v is not None]
    steps = []
    for j in range(1, len(measured) - window + 1):
        before, after = measured[max(0, j - window) : j], measured[j : j + window]
        low_after, high_before = min(v for _, v in after), max(v for _, v in before)
        if low_after > (1 + threshold) * high_before and low_after - high_before > min_rise:
            steps.append(Step(measured[j][0], tuple(i for i, _ in before), tuple(i for i, _ in after)))
    return steps


def find_over_budget(values, budget, window=CONFIRM_WINDOW):
    """Indices where a confirmed over-budget stretch starts (None = not measured).

    Point ``i`` qualifies when it and the next ``window - 1`` measured points are all above
    ``budget`` and the measured point before ``i`` (if any) is not.
    """
    measured = [(i, v) for i, v in enumerate(values) if v is not None]
    starts = []
    for j in range(len(measured) - window + 1):
        stretch_start = j == 0 or measured[j - 1][1] <= budget
        if stretch_start and all(v > budget for _, v in measured[j : j + window]):
            starts.append(measured[j][0])
    return starts
