"""Flags on a benchmark's series: change points, then the alert rule.

**Change points** (``changepoints``, Otava's method) split the series of one statistic (p95
per commit, and the median per commit where there are samples) into levels. They are found
on the logarithm of the values, so that a level's spread and a change are relative.

**The alert rule**, fit for CI, which runs it again after every commit: a commit is flagged
when it starts a level that is more than ``threshold`` above the *reference* level, that at
least ``confirm`` commits hold (it and the ones after it, each nearer the new level than the
old), and whose values are above those of every commit since the reference level began, by
a one-sided Mann-Whitney test at p <= ``RANK_PVALUE`` (ranks: one slow process or a second
mode of the machine weighs as one commit, not as its size), or, with at least ``confirm``
commits before, all of them more than ``threshold`` above all of those (a short history,
where ranks cannot reach that p-value).
The reference is the first level, then the last flagged level, or a lower level held as
long: so a creep of changes each under the threshold adds up until it is flagged, and a
slowdown after an improvement is measured from the improvement. A level's value is the
median of its commits. Hence:

- a single slow newest commit, or a burst shorter than ``confirm`` that came back, is never
  a flag; a level that is not yet confirmed is reported as *tentative*;
- the flag names the first commit of the new level; one slow commit just before a real step
  is a level of one commit, and does not mask it.

``budget``: the start of a stretch of at least ``BUDGET_CONFIRM`` commits over the budget.
"""

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import mannwhitneyu

from . import changepoints

THRESHOLD = 0.10
CONFIRM = 3  # commits holding a new level before it is flagged: the first one and 2 more
BUDGET_CONFIRM = 2  # commits over the budget in a row before it is flagged
MAX_PVALUE = 0.01  # the change points' t-test (Otava's default is 0.001; the rank test decides)
RANK_PVALUE = 0.001
WINDOW_LEN = changepoints.WINDOW_LEN


@dataclass(frozen=True)
class Shift:
    """A level that starts at ``index``: more than the threshold above ``reference``."""

    index: int
    reference: float  # the level it is measured from
    level: float  # the median of its points so far
    points: int  # how many commits hold it so far
    pvalue: float  # of the change point that starts it
    confirmed: bool  # held by at least ``confirm`` commits

    @property
    def change(self):
        return self.level / self.reference - 1.0


def levels(values, max_pvalue=MAX_PVALUE, window_len=WINDOW_LEN):
    """``(points, bounds, levels)``: the change points of ``values`` (positive floats, oldest
    first), the segment bounds they make (0 and len(values) included) and each segment's level."""
    values = np.asarray(values, dtype=float)
    assert np.all(values > 0), "levels need positive values: this is a bug in the caller"
    points = changepoints.change_points(np.log(values), window_len, max_pvalue) if len(values) > 1 else []
    bounds = [0, *(p.index for p in points), len(values)]
    return points, bounds, [float(np.median(values[a:b])) for a, b in zip(bounds, bounds[1:])]


def shifts_up(values, threshold=THRESHOLD, confirm=CONFIRM, max_pvalue=MAX_PVALUE, window_len=WINDOW_LEN):
    """The levels of ``values`` (positive floats, oldest first) that the alert rule flags,
    confirmed or (at the end of the series) tentative, by index."""
    return _walk(values, threshold, confirm, max_pvalue, window_len)[0]


def _walk(values, threshold, confirm, max_pvalue, window_len):
    """The alert rule along the levels: ``(shifts, change points, references)``; the
    references are the alert rule's reference level as ``(index, level)`` pairs, each holding
    from its index to the next one's (the first at index 0)."""
    values = np.asarray(values, dtype=float)
    points, bounds, found_levels = levels(values, max_pvalue, window_len)
    reference, since, found = found_levels[0], 0, []  # the reference level, and where it began
    references = [(0, reference)]
    for point, level, start, stop in zip(points, found_levels[1:], bounds[1:], bounds[2:]):
        middle = np.sqrt(level * reference)  # a value above it is nearer the new level
        while start < stop - 1 and min(values[start : start + 2]) <= middle < level:
            start += 1  # the level starts at its first commit that is at it, as the next one is
        held = int(np.sum(values[start:stop] > middle))
        if level > (1 + threshold) * reference and (held >= confirm or stop == len(values)):
            confirmed = held >= confirm and _ranked_above(values[start:stop], values[since:start], threshold, confirm)
            if confirmed or stop == len(values):
                found.append(Shift(start, reference, level, held, point.pvalue, confirmed))
            if confirmed:
                reference, since = level, start
                references.append((start, reference))
        elif level < reference and stop - start >= confirm:
            reference, since = level, start
            references.append((start, reference))
    return found, points, references


def _ranked_above(after, before, threshold, confirm):
    """Whether ``after`` is above ``before`` (every commit since the reference level began):
    by a one-sided Mann-Whitney test, or (a short history, where ranks cannot reach the test's
    p-value) with at least ``confirm`` commits before, every commit of ``after`` more than
    ``threshold`` above every one of ``before``."""
    if len(before) >= confirm and min(after) > (1 + threshold) * max(before):
        return True
    return bool(mannwhitneyu(after, before, alternative="greater").pvalue <= RANK_PVALUE)


def budget_starts(values, budget, confirm=BUDGET_CONFIRM):
    """Indices where a stretch of at least ``confirm`` values over ``budget`` starts."""
    over = [v > budget for v in values]
    return [
        i
        for i in range(len(over) - confirm + 1)
        if all(over[i : i + confirm]) and (i == 0 or not over[i - 1])
    ]


@dataclass(frozen=True)
class Flag:
    kind: str  # "regression" or "budget"
    benchmark: str
    machine: str
    env: str
    commit: str  # the first commit of the new level (or over budget)
    previous_commit: str | None
    before_ms: float | None  # regression: the reference level of ``statistic``; budget: the p95 before
    after_ms: float  # regression: the new level of ``statistic``; budget: the commit's p95
    statistic: str = "p95"  # which series moved: "p95", "median" or "p95+median"
    pvalue: float | None = None
    budget_ms: float | None = None
    tentative: bool = False  # a new level not yet held by ``CONFIRM`` commits: not a flag yet

    @property
    def change(self):
        return self.after_ms / self.before_ms - 1 if self.before_ms else None


@dataclass(frozen=True)
class Analysis:
    flags: list  # confirmed regressions and budget overruns
    tentative: list  # regressions waiting for more commits
    change_points: dict  # (benchmark, machine, env) -> commits where the p95 level changed
    references: dict  # (benchmark, machine, env) -> [(commit, p95 reference level ms)], from that commit on


def analyze(all_series, threshold=THRESHOLD, min_rise_ms=0.0):
    """Flags, tentative flags, the p95 change points and reference levels of every series."""
    flags, tentative, change_points, references = [], [], {}, {}
    for series in all_series:
        walks = _walks(series, threshold)  # the p95's serves the flags and the page's levels
        for flag in regression_flags(series, threshold, min_rise_ms, walks):
            (tentative if flag.tentative else flags).append(flag)
        flags += budget_flags(series)
        key = (series.benchmark, series.machine, series.env)
        change_points[key], references[key] = _p95_levels(series, walks)
    return Analysis(flags, tentative, change_points, references)


def regression_flags(series, threshold=THRESHOLD, min_rise_ms=0.0, walks=None):
    """The alert rule on the series' p95 and (where measured) median; one flag per commit.
    ``walks``: ``_walks(series, threshold)``, if the caller has it already."""
    by_commit = {}
    for statistic, (indices, (shifts, _, _)) in (_walks(series, threshold) if walks is None else walks).items():
        for shift in shifts:
            if shift.level - shift.reference <= min_rise_ms:
                continue
            index = indices[shift.index]
            previous = series.points[indices[shift.index - 1]].commit if shift.index > 0 else None
            flag = Flag(
                "regression", series.benchmark, series.machine, series.env, series.points[index].commit,
                previous, shift.reference, shift.level, statistic, shift.pvalue, tentative=not shift.confirmed,
            )
            if index in by_commit:  # both series moved: keep the p95's numbers
                flag = replace(by_commit[index], statistic="p95+median", tentative=by_commit[index].tentative and flag.tentative)
            by_commit[index] = flag
    return [by_commit[i] for i in sorted(by_commit)]


def budget_flags(series):
    """Where the series' p95 went over its budget and stayed (none without a budget)."""
    if series.budget_ms is None:
        return []
    points = series.points
    return [
        Flag(
            "budget", series.benchmark, series.machine, series.env, points[i].commit,
            points[i - 1].commit if i else None, points[i - 1].p95_ms if i else None, points[i].p95_ms,
            budget_ms=series.budget_ms,
        )
        for i in budget_starts([p.p95_ms for p in points], series.budget_ms)
    ]


def _walks(series, threshold):
    """``{statistic: (indices of the points it has, _walk of their values)}``: the p95's and,
    where every point has one, the median's."""
    walks = {}
    for statistic in ("p95", "median"):
        indices = [i for i, p in enumerate(series.points) if _positive(_value(p, statistic))]
        if not indices or (statistic == "median" and len(indices) < len(series.points)):
            continue  # a track value has no median
        values = [_value(series.points[i], statistic) for i in indices]
        walks[statistic] = (indices, _walk(values, threshold, CONFIRM, MAX_PVALUE, WINDOW_LEN))
    return walks


def _p95_levels(series, walks):
    """The commits where the p95 level changed, and the p95 reference levels by commit."""
    if "p95" not in walks:
        return [], []
    indices, (_, points, references) = walks["p95"]
    commit = [series.points[i].commit for i in indices]
    return [commit[p.index] for p in points], [(commit[i], level) for i, level in references]


def _value(point, statistic):
    return point.p95_ms if statistic == "p95" else point.median_ms


def _positive(value):
    return value is not None and math.isfinite(value) and value > 0
