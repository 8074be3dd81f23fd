"""The p95 page's overview: one row per series, its status, and the order the rows are read in.

A row's status, from the series' newest commits (``detect.CONFIRM`` of them, "now"):

- ``regression``: a regression flag (confirmed, not dismissed) still holds: the median now
  of the statistic that moved is more than the threshold above the level before the flag.
  The newest such flag wins (an older one still holds when a newer one went back only to
  its level); the row names its commit.
- ``over budget``: the series has a budget flag (confirmed, not dismissed) and its newest
  ``detect.BUDGET_CONFIRM`` p95s are all over the budget. The row names that flag's commit.
- ``tentative``: a new level among the newest commits that is not yet held by enough commits
  (an older one, far beyond the noise and never re-measured, is marked on the plot only).
- ``ok``: none of these. The row names the last p95 change point (or the newest commit).

Rows are sorted by status in that order, then by the size of their change, largest first
(regression: the flag's change; over budget: p95 over the budget; tentative: the new level's
change; ok: the change at the last change point, up or down).
"""

from dataclasses import dataclass

import numpy as np

from . import detect

STATUSES = ("regression", "over budget", "tentative", "ok")


@dataclass(frozen=True)
class Row:
    series: object  # series.Series
    status: str  # one of STATUSES
    commit: str  # the commit the row names (full hash)
    change: float | None  # the change that sorts the row (relative)
    since_change_point: float | None  # p95 level now over the level before the last change point, minus 1
    change_point: str | None  # the commit of the last p95 change point
    vs_budget: float | None  # p95 now over the budget, minus 1 (None without a budget)

    @property
    def key(self):
        return (self.series.benchmark, self.series.machine, self.series.env)


def rows(all_series, analysis, flags):
    """The overview rows, sorted. ``flags``: the confirmed flags left after dismissals."""
    by_series = {}
    for flag in flags:
        by_series.setdefault((flag.benchmark, flag.machine, flag.env), []).append(flag)
    tentative = {(f.benchmark, f.machine, f.env): f for f in analysis.tentative}  # the newest of each series
    found = []
    for s in all_series:
        key = (s.benchmark, s.machine, s.env)
        found.append(row_of(s, by_series.get(key, []), tentative.get(key), analysis.change_points[key]))
    return ordered(found)


def ordered(found):
    """``found`` rows by status, then by the size of their change (unknown changes last)."""
    return sorted(found, key=lambda r: (STATUSES.index(r.status), -_size(r.change)))


def row_of(series, flags, tentative, change_points):
    """The row of one series (``flags``: its confirmed flags, oldest first)."""
    points = series.points
    p95_now = _median_now([p.p95 for p in points])
    since, change_point = _since_last_change_point(series, change_points)
    vs_budget = p95_now / series.budget_ms - 1 if series.budget_ms else None
    common = dict(since_change_point=since, change_point=change_point, vs_budget=vs_budget)
    regression = _holding_regression(series, [f for f in flags if f.kind == "regression"])
    if regression is not None:
        change = _median_now(_values(series, regression.statistic)) / regression.before - 1
        return Row(series, "regression", regression.commit, change, **common)
    budget = [f for f in flags if f.kind == "budget"]
    recent = [p.p95 for p in points[-detect.BUDGET_CONFIRM :]]
    if series.budget_ms and budget and len(recent) == detect.BUDGET_CONFIRM and min(recent) > series.budget_ms:
        return Row(series, "over budget", budget[-1].commit, vs_budget, **common)
    if tentative is not None and tentative.commit in {p.commit for p in points[-detect.CONFIRM :]}:
        return Row(series, "tentative", tentative.commit, tentative.change, **common)
    return Row(series, "ok", change_point or points[-1].commit, since, **common)


def _size(change):
    """How much a row's change weighs in the order: its magnitude, 0 when unknown."""
    return abs(change) if change is not None and np.isfinite(change) else 0.0


def _holding_regression(series, regressions):
    """The newest regression flag whose level still holds, or None."""
    for flag in reversed(regressions):
        if _median_now(_values(series, flag.statistic)) > (1 + series.threshold) * flag.before:
            return flag
    return None


def _values(series, statistic):
    """The series' values of the statistic that moved (the p95's for "p95+median")."""
    if statistic == "median":
        return [p.median for p in series.points if p.median is not None]
    return [p.p95 for p in series.points]


def _since_last_change_point(series, change_points):
    """``(p95 level after / level before - 1, commit)`` of the last p95 change point, or ``(None, None)``."""
    if not change_points:
        return None, None
    commits = [p.commit for p in series.points]
    at = commits.index(change_points[-1])
    before = change_points[-2] if len(change_points) > 1 else None
    start = commits.index(before) if before else 0
    p95 = [p.p95 for p in series.points]
    return _median(p95[at:]) / _median(p95[start:at]) - 1, change_points[-1]


def _median_now(values):
    return _median(values[-detect.CONFIRM :])


def _median(values):
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(finite)) if finite else float("nan")


def readable_name(benchmark):
    """``bench_reconstruct.Reconstruct8k.time_reconstruct_8k('zero_copy')`` ->
    ``Reconstruct8k reconstruct_8k (zero_copy)``: the class, the function without asv's kind
    prefix, and the parameters without quotes."""
    name, _, params = benchmark.partition("(")
    parts = name.split(".")
    function = parts[-1]
    for prefix in ("time_", "track_"):
        if function.startswith(prefix):
            function = function[len(prefix) :]
            break
    readable = " ".join((parts[1:-1] or parts[:-1]) + [function])  # the module only when there is no class
    if params:
        readable += " (" + params.rstrip(")").replace("'", "").replace('"', "") + ")"
    return readable
