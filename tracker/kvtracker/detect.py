"""Flags on a benchmark's series: change points, then the alert rule.

**Change points** (``changepoints``, Otava's method) split the series of one statistic (p95
per commit, and the median per commit where there are samples) into levels. They are found
on the logarithm of the values, so that a level's spread and a change are relative.

**The alert rule**, fit for CI, which runs it again after every commit: a commit is flagged
when it starts a level that is more than ``threshold`` above the *reference* level, is not a
return to a level held before, that at least ``confirm`` commits hold (it and the ones after
it, each nearer the new level than the old), and whose values are above those of every commit
since the reference level began, by a one-sided Mann-Whitney test at p <= ``RANK_PVALUE`` (or,
with at least ``confirm`` commits before, all of them more than ``threshold`` above all of
those: a short history, where ranks cannot reach that p-value). A new level held by fewer
commits is *tentative*; it is marked *far beyond the noise* when every commit of it is more than
``threshold`` above every commit since the reference began and the lowest of its rounds
(processes) is above the highest round of those commits (a series without rounds needs
``BIG_HISTORY`` commits before instead): the main job re-measures such a level at once and
flags it when the re-measurement agrees (``confirm``), without waiting for more commits.
The reference is the first level, then the last flagged level, or a lower level held as
long. A rise back to within ``threshold`` of a level held before a drop of more than
``threshold`` (a runner switching between two speeds, an improvement undone) is a *return*:
not a flag, and that level is the reference again. A level's value is the median of its
commits. Hence:

- a single slow newest commit, or a burst shorter than ``confirm`` that came back, is never
  a flag by this rule alone (far beyond the noise, it is re-measured before it is one);
- creep adds up: levels each under the threshold are measured from the reference;
- the flag names the first commit that can be at the new level, never one that came back:
  one slow commit just before a real step is a level of one commit and does not mask it.
  When that first commit is uncertain (a commit after it was measured at the old level, or it
  may be a single slow commit just before the real step), the flag lists its *candidates*,
  from the first commit that can be at the new level to the one from which the level holds
  (at least two), for the main job's re-measurement to name the first slow one (``confirm``).

Where the p95 and the median of a series both move within ``confirm`` commits of each other,
that is one change: one flag at the earlier commit, naming each statistic that moved.

``budget``: the start of a stretch of at least ``BUDGET_CONFIRM`` commits over the budget.
"""

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import mannwhitneyu

from . import changepoints, stats

THRESHOLD = 0.10
CONFIRM = 3  # commits holding a new level before it is flagged: the first one and 2 more
BUDGET_CONFIRM = 2  # commits over the budget in a row before it is flagged
MAX_PVALUE = 0.01  # the change points' t-test (Otava's default is 0.001; the rank test decides)
RANK_PVALUE = 0.001
BIG_HISTORY = 10  # commits since the reference before a step without rounds can be "far beyond"
WINDOW_LEN = changepoints.WINDOW_LEN
STATISTICS = ("p95", "median")


@dataclass(frozen=True)
class Shift:
    """A level that starts at ``index``: more than the threshold above ``reference``."""

    index: int  # the first commit that can be at the new level
    settled: int  # the first commit from which the new level holds (== index when certain)
    reference: float  # the level it is measured from
    level: float  # the median of its points so far
    points: int  # how many commits hold it so far
    pvalue: float  # of the change point that starts it
    confirmed: bool  # held by at least ``confirm`` commits and ranked above the commits before
    far: bool = False  # not (yet) confirmed, but far beyond the noise: to be re-measured at once
    baseline: int = -1  # the last commit of the reference level before it (-1: the one before ``index``)

    @property
    def change(self):
        return self.level / self.reference - 1.0

    @property
    def candidates(self):
        """Indices that may be the first commit of the level: ``index`` alone when it is
        certain, else ``index`` to ``settled`` (at least two)."""
        return tuple(range(self.index, max(self.settled, self.index + 1) + 1))

    @property
    def before(self):
        """The commit a re-measurement compares the candidates with: the last of the reference
        level (for a step, the commit before it, or an earlier one when a change point ended the
        reference's segment before ``index``; for creep, where the creep began)."""
        return self.baseline if self.baseline >= 0 else self.index - 1


def levels(values, max_pvalue=MAX_PVALUE, window_len=WINDOW_LEN):
    """``(points, bounds, levels)``: the change points of ``values`` (positive floats, oldest
    first), the segment bounds they make (0 and len(values) included) and each segment's level."""
    values = np.asarray(values, dtype=float)
    assert np.all(values > 0), "levels need positive values: this is a bug in the caller"
    points = changepoints.change_points(np.log(values), window_len, max_pvalue) if len(values) > 1 else []
    bounds = [0, *(p.index for p in points), len(values)]
    return points, bounds, [float(np.median(values[a:b])) for a, b in zip(bounds, bounds[1:])]


def shifts_up(values, threshold=THRESHOLD, confirm=CONFIRM, spreads=None, max_pvalue=MAX_PVALUE, window_len=WINDOW_LEN):
    """The levels of ``values`` (positive floats, oldest first) that the alert rule flags,
    confirmed or (at the end of the series) tentative, by index. ``spreads``: per value, the
    lowest and highest of its rounds' values (``round_spread``), or None without rounds."""
    return _walk(values, threshold, confirm, spreads, max_pvalue, window_len)[0]


def _walk(values, threshold, confirm, spreads, max_pvalue, window_len):
    """The alert rule along the levels: ``(shifts, change points, references)``; the
    references are the alert rule's reference level as ``(index, level)`` pairs, each holding
    from its index to the next one's (the first at index 0)."""
    values = np.asarray(values, dtype=float)
    points, bounds, found_levels = levels(values, max_pvalue, window_len)
    reference, since, found = found_levels[0], 0, []  # the reference level, and where it began
    reference_end = bounds[1]  # where the reference level's own segment ends
    dropped_from = []  # levels held before a drop of more than the threshold, since the last flag
    references = [(0, reference)]
    k = 0
    while k < len(points):
        point, previous, level, start, stop = points[k], found_levels[k], found_levels[k + 1], bounds[k + 1], bounds[k + 2]
        k += 1
        if level > (1 + threshold) * reference:
            while k < len(points) and _same_level(found_levels[k + 1], level, threshold):
                stop, k = bounds[k + 2], k + 1  # the next segment is this level again: one level
                level = float(np.median(values[start:stop]))
            middle = np.sqrt(level * reference)  # a value above it is nearer the new level
            first, settled = _level_start(values, start, stop, since, middle, level, previous)
            if any(_same_level(held, level, 2 * threshold) for held in dropped_from):
                reference, since, reference_end, dropped_from = level, first, stop, []  # back at a level held before
                references.append((first, reference))
                continue
            held = int(np.sum(values[first:stop] > middle))
            confirmed = held >= confirm and _ranked_above(values[first:stop], values[since:first], threshold, confirm)
            far = not confirmed and _far_beyond(values, spreads, first, stop, since, threshold)
            if confirmed or far or stop == len(values):
                baseline = min(reference_end, first) - 1
                # Its level from its own commits: a change point placed early would add old ones.
                own = float(np.median(values[first:stop]))
                found.append(Shift(first, settled, reference, own, held, point.pvalue, confirmed, far, baseline))
            if confirmed:
                reference, since, reference_end, dropped_from = level, first, stop, []
                references.append((first, reference))
        elif level < reference and stop - start >= confirm:
            if level * (1 + threshold) < reference:
                dropped_from.append(reference)
            reference, since, reference_end = level, start, stop
            references.append((start, reference))
    if not found or found[-1].index < since:  # the newest commits, where change points cannot split yet
        found += _far_tail(values, spreads, since, threshold, confirm)
    return found, points, references


def _far_tail(values, spreads, since, threshold, confirm):
    """A level of the newest 1 to ``confirm - 1`` commits that is far beyond the noise of the
    commits since the reference began (``_far_beyond``), as a tentative ``Shift``; or none.
    Change points need more than one commit on a side; a step far beyond the noise does not."""
    n = len(values)
    for k in range(min(confirm - 1, n - since - 1), 0, -1):
        if _far_beyond(values, spreads, n - k, n, since, threshold):
            reference, level = float(np.median(values[since : n - k])), float(np.median(values[n - k :]))
            return [Shift(n - k, n - k, reference, level, k, float("nan"), False, True, n - k - 1)]
    return []


def _same_level(a, b, threshold):
    """Whether levels ``a`` and ``b`` are within half of ``threshold`` of each other (relative)."""
    return max(a, b) <= (1 + threshold / 2) * min(a, b)


def level_starts(values, threshold=THRESHOLD):
    """The indices where the alert rule's reference level changed (a flagged level, a lower
    level held, a return): the steps it takes as real, not as noise."""
    return [index for index, _ in _walk(values, threshold, CONFIRM, None, MAX_PVALUE, WINDOW_LEN)[2][1:]]


def _level_start(values, start, stop, since, middle, level, previous_level):
    """``(first, settled)`` of a new level whose change point is at ``start``: ``first`` is the
    earliest commit that can be at it (the change point, moved back by one commit that is
    nearer the new level than its own segment's level, as a change point placed one late
    leaves it, and forward over commits at the old level), ``settled`` the first commit from
    which it holds (it and the next one are both at it)."""
    first = start
    before = values[start - 1] if start - 1 > since else None
    if before is not None and before > middle and abs(np.log(before / level)) < abs(np.log(before / previous_level)):
        first -= 1
    while first < stop - 1 and values[first] <= middle:
        first += 1
    settled = first
    while settled < stop - 1 and min(values[settled : settled + 2]) <= middle:
        settled += 1
    return first, settled


def _ranked_above(after, before, threshold, confirm):
    """Whether ``after`` is above ``before`` (every commit since the reference level began):
    by a one-sided Mann-Whitney test, or (a short history, where ranks cannot reach the test's
    p-value) with at least ``confirm`` commits before, every commit of ``after`` more than
    ``threshold`` above every one of ``before``."""
    if len(before) >= confirm and min(after) > (1 + threshold) * max(before):
        return True
    return bool(mannwhitneyu(after, before, alternative="greater").pvalue <= RANK_PVALUE)


def _far_beyond(values, spreads, first, stop, since, threshold):
    """Whether the level ``values[first:stop]`` is far beyond the noise of ``values[since:first]``:
    every value more than ``threshold`` above every earlier one, and (with rounds) its lowest
    round above their highest; without rounds, ``BIG_HISTORY`` earlier commits are needed."""
    before, after = values[since:first], values[first:stop]
    if len(before) == 0 or min(after) <= (1 + threshold) * max(before):
        return False
    if spreads is None or any(spreads[i] is None for i in range(since, stop)):
        return len(before) >= BIG_HISTORY
    lowest_after = min(spreads[i][0] for i in range(first, stop))
    highest_before = max(spreads[i][1] for i in range(since, first))
    return lowest_after > highest_before


def round_spread(rounds, statistic):
    """``(lowest, highest)`` of ``statistic`` over a commit's rounds, or None with fewer than 2."""
    if len(rounds) < 2 or any(len(r) == 0 for r in rounds):
        return None
    found = [stats.p95(r) if statistic == "p95" else float(np.median(r)) for r in rounds]
    return min(found), max(found)


def budget_starts(values, budget, confirm=BUDGET_CONFIRM):
    """Indices where a stretch of at least ``confirm`` values over ``budget`` starts."""
    over = [v > budget for v in values]
    return [
        i
        for i in range(len(over) - confirm + 1)
        if all(over[i : i + confirm]) and (i == 0 or not over[i - 1])
    ]


@dataclass(frozen=True)
class Move:
    """One statistic's part in a change: its level before and after."""

    statistic: str  # "p95" or "median"
    before: float
    after: float

    @property
    def change(self):
        return self.after / self.before - 1


@dataclass(frozen=True)
class Change:
    """One change of a series found by the alert rule in one or more of its statistics."""

    index: int  # the first commit that can be at the new level
    candidates: tuple  # indices that may be that first commit (``Shift.candidates``)
    moves: tuple  # of ``Move``, the primary statistic (p95 where it moved) first
    pvalue: float
    confirmed: bool
    far: bool
    before: int  # the commit a re-measurement compares the candidates with (``Shift.before``)

    @property
    def statistic(self):
        """``"p95"``, ``"median"`` or ``"p95+median"`` (``"value"`` for a track's value)."""
        return "+".join(dict.fromkeys(m.statistic for m in self.moves))


def changes(values_by_statistic, threshold=THRESHOLD, min_rise=0.0, spreads_by_statistic=None):
    """The alert rule on each statistic's values (``{"p95": [...], "median": [...]}``, one
    value per commit, the same commits), merged by ``merge``. ``spreads_by_statistic``: each
    statistic's ``round_spread`` per commit, where the commits have rounds."""
    spreads = spreads_by_statistic or {}
    return merge({s: shifts_up(v, threshold, CONFIRM, spreads.get(s)) for s, v in values_by_statistic.items()}, min_rise)


def merge(shifts_by_statistic, min_rise=0.0):
    """``Change``s from each statistic's shifts: shifts of different statistics starting within
    ``CONFIRM`` commits of each other are one change at the earliest. A shift whose level rose by
    no more than ``min_rise`` (in the values' unit) is left out."""
    shifts = sorted(
        (
            (shift.index, STATISTICS.index(statistic), statistic, shift)
            for statistic, found in shifts_by_statistic.items()
            for shift in found
            if shift.level - shift.reference > min_rise
        ),
        key=lambda s: s[:2],
    )
    merged = []
    for index, _, statistic, shift in shifts:
        move = Move(statistic, shift.reference, shift.level)
        last = merged[-1] if merged else None
        if last is not None and index - last.index <= CONFIRM and statistic not in last.statistic.split("+"):
            merged[-1] = replace(
                last,
                candidates=tuple(sorted(set(last.candidates) | set(shift.candidates))),
                moves=tuple(sorted((*last.moves, move), key=lambda m: STATISTICS.index(m.statistic))),
                confirmed=last.confirmed or shift.confirmed,
                far=last.far or shift.far,
                before=min(last.before, shift.before),
            )
        else:
            merged.append(Change(index, shift.candidates, (move,), shift.pvalue, shift.confirmed, shift.far, shift.before))
    return merged


@dataclass(frozen=True)
class Flag:
    kind: str  # "regression" or "budget"
    benchmark: str
    machine: str
    env: str
    commit: str  # the first commit of the new level (or over budget)
    previous_commit: str | None
    before: float | None  # regression: the reference level of ``statistic``; budget: the p95 before
    after: float  # regression: the new level of ``statistic``; budget: the commit's p95
    statistic: str = "p95"  # which series moved: "p95", "median" or "p95+median"
    pvalue: float | None = None
    budget_ms: float | None = None
    tentative: bool = False  # a new level not yet held by ``CONFIRM`` commits: not a flag yet
    moves: tuple = ()  # of ``Move``: every statistic that moved (regression)
    candidates: tuple = ()  # commits that may be the first of the new level, oldest first
    far: bool = False  # flagged as far beyond the noise, before ``CONFIRM`` commits held it
    baseline_commit: str | None = None  # the last commit at the reference level: what a re-measurement compares with
    unit: str = "ms"  # of before, after and the moves' levels (the series'; a budget is in ms)

    @property
    def change(self):
        return self.after / self.before - 1 if self.before else None


@dataclass(frozen=True)
class Analysis:
    flags: list  # confirmed regressions and budget overruns
    tentative: list  # regressions waiting for more commits
    change_points: dict  # (benchmark, machine, env) -> commits where the p95 level changed
    references: dict  # (benchmark, machine, env) -> [(commit, p95 reference level ms)], from that commit on


def analyze(all_series, min_rise_ms=0.0):
    """Flags, tentative flags, the p95 change points and reference levels of every series,
    each at its own ``threshold``."""
    flags, tentative, change_points, references = [], [], {}, {}
    for series in all_series:
        walks = _walks(series, series.threshold)  # the p95's serves the flags and the page's levels
        for flag in regression_flags(series, series.threshold, min_rise_ms, walks):
            (tentative if flag.tentative else flags).append(flag)
        flags += budget_flags(series)
        key = (series.benchmark, series.machine, series.env)
        change_points[key], references[key] = _p95_levels(series, walks)
    return Analysis(flags, tentative, change_points, references)


def regression_flags(series, threshold=THRESHOLD, min_rise_ms=0.0, walks=None):
    """The alert rule on the series' p95 and (where measured) median: one flag per change.
    ``walks``: ``_walks(series, threshold)``, if the caller has it already."""
    indices, found = _walks(series, threshold) if walks is None else walks
    commits = [series.points[i].commit for i in indices]
    flags = []
    for change in merge({statistic: walk[0] for statistic, walk in found.items()}, min_rise_ms):
        if series.statistic != "p95":  # the main value is asv's median, or a track's value
            change = replace(change, moves=tuple(replace(m, statistic=series.statistic) for m in change.moves))
        primary = change.moves[0]
        flags.append(
            Flag(
                "regression", series.benchmark, series.machine, series.env, commits[change.index],
                commits[change.index - 1] if change.index > 0 else None, primary.before, primary.after,
                change.statistic, change.pvalue, tentative=not change.confirmed, moves=change.moves,
                candidates=tuple(commits[i] for i in change.candidates if i < len(commits)), far=change.far,
                baseline_commit=commits[change.before] if change.before >= 0 else None, unit=series.unit,
            )
        )
    return flags


def budget_flags(series):
    """Where the series' p95 went over its budget and stayed (none without a budget)."""
    if series.budget_ms is None:
        return []
    points = series.points
    return [
        Flag(
            "budget", series.benchmark, series.machine, series.env, points[i].commit,
            points[i - 1].commit if i else None, points[i - 1].p95 if i else None, points[i].p95,
            budget_ms=series.budget_ms,
        )
        for i in budget_starts([p.p95 for p in points], series.budget_ms)
    ]


def _walks(series, threshold):
    """``(indices, {statistic: _walk of its values})`` over the points whose p95 is positive:
    the p95's and, where every such point has one, the median's."""
    indices = [i for i, p in enumerate(series.points) if _positive(p.p95)]
    points = [series.points[i] for i in indices]
    with_median = series.statistic == "p95" and points and all(_positive(p.median) for p in points)
    named = ["p95"] + (["median"] if with_median else [])
    walks = {}
    for statistic in named if points else []:
        values = [_value(p, statistic) for p in points]
        spreads = [round_spread(p.rounds, statistic) for p in points]
        walks[statistic] = _walk(values, threshold, CONFIRM, spreads, MAX_PVALUE, WINDOW_LEN)
    return indices, walks


def _p95_levels(series, walks):
    """The commits where the p95 level changed, and the p95 reference levels by commit."""
    indices, found = walks
    if "p95" not in found:
        return [], []
    _, points, references = found["p95"]
    commit = [series.points[i].commit for i in indices]
    return [commit[p.index] for p in points], [(commit[i], level) for i, level in references]


def _value(point, statistic):
    return point.p95 if statistic == "p95" else point.median


def _positive(value):
    return value is not None and math.isfinite(value) and value > 0
