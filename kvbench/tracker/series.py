"""p95 series along a branch, and the flags on them (the analysis behind ``kvcache-bench p95``).

A series is one benchmark (parameter combination) on one machine and environment, with one
point per commit of the branch's first-parent history that has a result, oldest first.

Flags, per series (rules in ``kvbench.stats``):

- ``regression``: a confirmed step (``find_steps``) more than ``threshold`` (and more than
  ``min_rise_ms``, a noise floor, 0 by default) up; where the
  points have raw samples it must also be significant against the last commit before it,
  for the step's commit and for each confirming one: the bootstrap CI of
  p95(that commit) / p95(last commit before) lies above ``1 + threshold`` (the gate's test).
  So a commit that did nothing, just before a real step, is not blamed for it.
- ``budget``: the start of a confirmed stretch over the series' budget (``find_over_budget``).
"""

from dataclasses import dataclass, field

from . import stats


@dataclass(frozen=True)
class Point:
    commit: str
    date: int
    p95_ms: float
    ci_low_ms: float | None  # None: no CI (a track value, or asv's median standing in)
    ci_high_ms: float | None
    n_samples: int
    source: str  # as Measurement.source
    samples_ms: tuple = field(repr=False)


@dataclass(frozen=True)
class Series:
    benchmark: str
    machine: str
    env: str
    points: list
    budget_ms: float | None = None


@dataclass(frozen=True)
class Flag:
    kind: str  # "regression" or "budget"
    benchmark: str
    machine: str
    env: str
    commit: str
    previous_commit: str | None
    p95_before_ms: float | None
    p95_after_ms: float
    ratio_ci: tuple | None = None  # (ratio, low, high) of this commit against the previous one
    budget_ms: float | None = None


def point_of(measurement):
    """A measurement's p95 point: from its samples, else its value (track p95 or median)."""
    m = measurement
    if m.samples_ms:
        value, low, high = stats.p95_with_ci(m.samples_ms)
        return Point(m.commit, m.date, value, low, high, len(m.samples_ms), m.source, m.samples_ms)
    return Point(m.commit, m.date, m.value_ms, None, None, 0, m.source, ())


def build_series(measurements, commit_order, budget_for):
    """Series of the measurements whose commit is in ``commit_order`` (hashes, oldest first).

    ``budget_for(benchmark)`` gives a benchmark's budget or None. Series are sorted by
    benchmark, machine, env.
    """
    position = {commit: i for i, commit in enumerate(commit_order)}
    grouped = {}
    for m in measurements:
        if m.commit in position:
            grouped.setdefault((m.benchmark, m.machine, m.env), []).append(m)
    return [
        Series(
            benchmark,
            machine,
            env,
            [point_of(m) for m in sorted(ms, key=lambda m: position[m.commit])],
            budget_for(benchmark),
        )
        for (benchmark, machine, env), ms in sorted(grouped.items())
    ]


def regression_flags(series, threshold, min_rise_ms=0.0):
    """The series' confirmed, significant p95 steps up (see the module docstring)."""
    points = series.points
    flags = []
    for step in stats.find_steps([p.p95_ms for p in points], threshold, min_rise_ms):
        before = points[step.before[-1]]
        tests = [(_ratio_ci(before, points[i]), points[i].p95_ms - before.p95_ms) for i in step.after]
        if all(ci for ci, _ in tests) and not all(
            stats.is_significant_regression(ci[1], rise, threshold, min_rise_ms) for ci, rise in tests
        ):
            continue
        flags.append(_flag("regression", series, step.index, ratio_ci=tests[0][0]))
    return flags


def _ratio_ci(before, after):
    """The bootstrap (ratio, low, high) of two points' p95, or None without samples at both."""
    if before.samples_ms and after.samples_ms:
        return stats.p95_ratio_ci(before.samples_ms, after.samples_ms)
    return None


def budget_flags(series):
    """Where the series' p95 went over its budget and stayed (none without a budget)."""
    if series.budget_ms is None:
        return []
    starts = stats.find_over_budget([p.p95_ms for p in series.points], series.budget_ms)
    return [_flag("budget", series, i, budget_ms=series.budget_ms) for i in starts]


def _flag(kind, series, index, **extra):
    point, previous = series.points[index], series.points[index - 1] if index > 0 else None
    return Flag(
        kind=kind,
        benchmark=series.benchmark,
        machine=series.machine,
        env=series.env,
        commit=point.commit,
        previous_commit=previous.commit if previous else None,
        p95_before_ms=previous.p95_ms if previous else None,
        p95_after_ms=point.p95_ms,
        **extra,
    )
