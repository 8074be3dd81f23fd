"""The tracker's statistics: pure functions over samples (any unit) and p95 series.

- ``summary``: p95 and median by linear interpolation (numpy's default) and the p95's
  distribution-free confidence interval (``asv_runner.statistics.quantile_ci``: the smallest
  pair of order statistics whose binomial coverage is at least the level; an end is +-inf
  when there are too few samples to bound it).
- ``quantile_ratio_ci``: an interval of a quantile's ratio, e.g. p95(head) / p95(base), from a
  hierarchical bootstrap (rounds, then samples): the noise within a run and between its
  processes. Seeded.
- ``neighbour_ratio_bound``: how far two neighbouring commits of a branch's history are apart
  on this machine, as an empirical quantile: the noise between runs, heavy tails and speed
  modes included.
- ``split_rounds``: a commit's samples back into asv's rounds (one process each).
"""

import functools
import math
from statistics import NormalDist

import numpy as np
from asv_runner.statistics import quantile_ci

P95 = 0.95
CI_LEVEL = 0.95
RATIO_CI_LEVEL = 0.98  # two-sided 98%: its lower end is a one-sided 99% bound
MIN_HISTORY = 6  # commits of history before their spread is taken as the run-to-run noise
HISTORY_LEVEL = 0.98  # of |log ratio| of neighbouring commits: a one-sided 99% bound
BOOTSTRAP_RESAMPLES = 2000


def p95(samples):
    """The 95th percentile of ``samples`` (linear interpolation between order statistics)."""
    assert len(samples) > 0, "p95 of no samples: this is a bug in the caller"
    return _interpolated(np.sort(np.asarray(samples, dtype=float)), P95)


def quantile(samples, q):
    """The ``q`` quantile of ``samples`` (linear interpolation, as numpy's default)."""
    assert len(samples) > 0, "a quantile of no samples: this is a bug in the caller"
    return _interpolated(np.sort(np.asarray(samples, dtype=float)), q)


def summary(samples, level=CI_LEVEL):
    """``(p95, median, low, high)`` of ``samples`` from one sort: the p95 and the median
    interpolated as numpy's default does, and an order-statistic CI of the p95 of coverage
    >= ``level`` (``low`` is -inf or ``high`` +inf where the samples are too few to bound that
    side: ``high`` needs roughly 60 samples at 95%)."""
    ordered = np.sort(np.asarray(samples, dtype=float))
    low, high = _ci_ranks(len(ordered), level)
    return (
        _interpolated(ordered, P95),
        _interpolated(ordered, 0.5),
        float(ordered[low]) if low is not None else -math.inf,
        float(ordered[high]) if high is not None else math.inf,
    )


def _interpolated(ordered, q):
    """The ``q`` quantile of sorted values, linear between order statistics (numpy's default)."""
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return float(ordered[below] + (position - below) * (ordered[above] - ordered[below]))


@functools.lru_cache(maxsize=1024)
def _ci_ranks(n, level):
    """The ranks (0-based, None for unbounded) of the order statistics that
    ``asv_runner.statistics.quantile_ci`` picks for ``n`` samples: they depend on ``n`` alone,
    so its pure-Python binomial sums run once per sample count, on the ranks themselves."""
    _, (low, high) = quantile_ci(list(range(n)), P95, alpha_min=1 - level)
    return (None if math.isinf(low) else int(low)), (None if math.isinf(high) else int(high))


def split_rounds(samples, rounds, size=None):
    """``samples`` cut back into asv's rounds (one process each; asv appends each round's
    samples after the previous rounds', and ``asv run --append-samples`` whole new rounds after
    the old ones). With ``size``, the fixed number of samples a round takes (an integer
    ``repeat``), consecutive parts of ``size``, as many as there are; otherwise (a repeat that
    stopped on time, or sizes that do not divide) ``rounds`` parts of (nearly) equal size.
    Fewer parts when there are fewer samples than rounds."""
    samples = np.asarray(samples, dtype=float)
    if size and len(samples) >= size and len(samples) % size == 0:
        return [tuple(samples[k : k + size]) for k in range(0, len(samples), size)]
    rounds = max(1, min(int(rounds), len(samples)))
    return [tuple(part) for part in np.array_split(samples, rounds)]


def quantile_ratio_ci(base_rounds, head_rounds, q=P95, level=RATIO_CI_LEVEL, resamples=BOOTSTRAP_RESAMPLES, seed=0):
    """``(ratio, low, high)``: the ``q`` quantile of head over base (p95 by default, 0.5 for
    the median) of the pooled samples, and an interval that holds the noise of one run: its
    samples and its processes.

    ``*_rounds``: each commit's samples, one sequence per round (process). A hierarchical
    bootstrap resamples the rounds with replacement, then each drawn round's samples, so the
    spread between processes is in the interval when a commit has several rounds. The interval
    is normal on the log scale at ``level`` (two-sided). Seeded: the same input gives the same
    interval. Every round must be non-empty, and the p95s positive.
    """
    rng = np.random.default_rng(seed)
    log_ratios = np.log(_bootstrap(head_rounds, q, resamples, rng)) - np.log(_bootstrap(base_rounds, q, resamples, rng))
    pooled = [_interpolated(np.sort(np.concatenate(rounds).astype(float)), q) for rounds in (head_rounds, base_rounds)]
    return ratio_interval(pooled[0] / pooled[1], math.sqrt(float(np.var(log_ratios))), level)


def ratio_interval(ratio, log_spread, level=RATIO_CI_LEVEL):
    """``(ratio, low, high)``: a two-sided ``level`` interval, normal on the log scale, of a
    ratio whose logarithm has standard deviation ``log_spread``."""
    z = NormalDist().inv_cdf((1 + level) / 2) * log_spread
    return ratio, ratio * math.exp(-z), ratio * math.exp(z)


def _bootstrap(rounds, q, resamples, rng):
    """The ``q`` quantile of ``resamples`` hierarchical resamples: rounds with replacement, then
    samples within each drawn round (as many as the largest round holds)."""
    sizes = np.array([len(r) for r in rounds])
    padded = np.zeros((len(rounds), sizes.max()))
    for k, r in enumerate(rounds):
        padded[k, : len(r)] = r
    picked = rng.integers(len(rounds), size=(resamples, len(rounds), 1))
    positions = (rng.random((resamples, len(rounds), sizes.max())) * sizes[picked]).astype(int)
    return np.quantile(padded[picked, positions].reshape(resamples, -1), q, axis=1)


def neighbour_ratio_bound(values, level=HISTORY_LEVEL, level_starts=()):
    """The ratio that two neighbouring commits of ``values`` (one benchmark along a branch,
    oldest first) exceed, up or down, with probability ``1 - level``: the ``level`` quantile of
    ``exp(|log(v[i] / v[i-1])|)``, leaving out each ``i`` in ``level_starts`` (the first commits
    of levels the alert rule took as real: a step is not noise). With n ratios the quantile
    asked is at most n / (n + 1) (the largest ratio seen, no more: an empirical bound cannot
    reach past its data). Distribution-free: a machine's heavy tails and its switches between
    speeds are in it. None for fewer than ``MIN_HISTORY`` values or ratios."""
    values = np.asarray(values, dtype=float)
    if len(values) < MIN_HISTORY or not np.all(values > 0):
        return None
    logs = np.log(values)
    kept = [i for i in range(1, len(logs)) if i not in set(level_starts)]
    if len(kept) < MIN_HISTORY - 1:
        return None
    ratios = np.abs(logs[kept] - logs[np.array(kept) - 1])
    return float(np.exp(np.quantile(ratios, min(level, len(ratios) / (len(ratios) + 1)), method="higher")))


def is_significant_regression(ratio, low, rise, threshold, min_rise=0.0, history_bound=None):
    """The gate's rule: the statistic rose by more than ``threshold`` (ratio) and more than
    ``min_rise`` (``rise`` = after - before), the interval's lower end ``low`` is above 1 (None:
    no interval), and the ratio is beyond ``history_bound`` (``neighbour_ratio_bound``; None:
    no history)."""
    return (
        ratio > 1 + threshold
        and (low is None or low > 1)
        and (history_bound is None or ratio > history_bound)
        and rise > min_rise
    )
