"""p95 series along a branch: one benchmark (parameter combination) at one asv ``version`` on
one machine and environment, one point per commit of the branch's first-parent history that
has a result, oldest first. Each point has its p95 (from samples; a ``track_`` value; or asv's
median when samples were not kept) and its median (None for a track value).

As in asv, a benchmark's new ``version`` starts a new series, and only the current one is
judged: the others, and the series of benchmarks no longer in the suite, are *retired*
(kept for the record, never compared with the current one)."""

from dataclasses import dataclass, field

from . import stats


@dataclass(frozen=True)
class Point:
    commit: str
    date: int
    p95: float
    median: float | None  # None for a track value
    ci_low: float | None  # None: no CI (a track value, or asv's median standing in)
    ci_high: float | None
    n_samples: int
    source: str  # as Measurement.source
    samples: tuple = field(repr=False)
    rounds: tuple = field(default=(), repr=False)  # the samples cut into asv's rounds (processes)


@dataclass(frozen=True)
class Series:
    benchmark: str
    machine: str
    env: str
    points: list
    budget_ms: float | None = None
    version: str | None = None  # asv's version of the benchmark when these points were measured
    retired: str | None = None  # why the series is not judged (None: it is the current one)
    threshold: float = 0.10  # the relative change that counts (asv's regressions_thresholds, or --threshold)
    unit: str = "ms"  # of every value of its points (``read.unit_of``)

    @property
    def statistic(self):
        """What the series' main value (``Point.p95``) is: ``"p95"`` of raw samples or of a
        ``track_*p95*`` benchmark, ``"median"`` where asv kept only its median (no
        ``--record-samples``) at every commit, ``"value"`` for another ``track_`` benchmark."""
        sources = {p.source for p in self.points}
        if sources == {"median"}:
            return "median"
        if sources == {"track"} and "p95" not in self.benchmark.split("(", 1)[0].rsplit(".", 1)[-1]:
            return "value"
        return "p95"


def point_of(measurement):
    """A measurement's p95 point: from its samples, else its value (track p95 or median)."""
    m = measurement
    if m.samples:
        value, median, low, high = stats.summary(m.samples)
        return Point(
            m.commit, m.date, value, median, low, high, len(m.samples), m.source, m.samples, tuple(m.sample_rounds)
        )
    median = m.value if m.source == "median" else None
    return Point(m.commit, m.date, m.value, median, None, None, 0, m.source, ())


def build_series(measurements, commit_order, budget_for, current_versions=None, threshold_for=None):
    """Series of the measurements whose commit is in ``commit_order`` (hashes, oldest first),
    one per benchmark, machine, env and version, sorted by benchmark, machine, env, then
    current before retired.

    ``budget_for(benchmark)`` gives a benchmark's budget or None, ``threshold_for(benchmark)``
    its threshold (default 0.10). ``current_versions``
    (``read.current_versions``: the suite's benchmarks and their versions, or None when
    unknown) decides which series are current: the one of the benchmark's version in the
    suite; without it, the one of the newest commit's version. The others are ``retired``.
    """
    position = {commit: i for i, commit in enumerate(commit_order)}
    grouped = {}
    for m in measurements:
        if m.commit in position:
            grouped.setdefault((m.benchmark, m.machine, m.env, m.version), []).append(m)
    newest = {}
    for (benchmark, machine, env, version), ms in grouped.items():
        last = max(position[m.commit] for m in ms)
        if last >= newest.get((benchmark, machine, env), (-1, None))[0]:
            newest[(benchmark, machine, env)] = (last, version)
    found = []
    for (benchmark, machine, env, version), ms in grouped.items():
        retired = _retired(benchmark, version, current_versions, newest[(benchmark, machine, env)][1])
        points = [point_of(m) for m in sorted(ms, key=lambda m: position[m.commit])]
        threshold = threshold_for(benchmark) if threshold_for else Series.threshold
        unit = ms[0].unit
        found.append(Series(benchmark, machine, env, points, budget_for(benchmark), version, retired, threshold, unit))
    return sorted(found, key=lambda s: (s.benchmark, s.machine, s.env, s.retired is not None, s.version or ""))


def _retired(benchmark, version, current_versions, newest_version):
    """Why a series of ``benchmark`` at ``version`` is not judged, or None when it is current."""
    name = benchmark.split("(", 1)[0]
    if current_versions is not None:
        if name not in current_versions:
            return "no longer in the suite (asv's benchmarks.json)"
        if version is not None and current_versions[name] is not None and version != current_versions[name]:
            return f"version {version}; the suite's is {current_versions[name]}"
        return None
    return None if version == newest_version else f"version {version}; the newest commit's is {newest_version}"
