"""p95 series along a branch: one benchmark (parameter combination) on one machine and
environment, one point per commit of the branch's first-parent history that has a result,
oldest first. Each point has its p95 (from samples; a ``track_`` value; or asv's median when
samples were not kept) and its median (None for a track value)."""

from dataclasses import dataclass, field

from . import stats


@dataclass(frozen=True)
class Point:
    commit: str
    date: int
    p95_ms: float
    median_ms: float | None  # None for a track value
    ci_low_ms: float | None  # None: no CI (a track value, or asv's median standing in)
    ci_high_ms: float | None
    n_samples: int
    source: str  # as Measurement.source
    samples_ms: tuple = field(repr=False)
    rounds: tuple = field(default=(), repr=False)  # the samples cut into asv's rounds (processes)


@dataclass(frozen=True)
class Series:
    benchmark: str
    machine: str
    env: str
    points: list
    budget_ms: float | None = None


def point_of(measurement):
    """A measurement's p95 point: from its samples, else its value (track p95 or median)."""
    m = measurement
    if m.samples_ms:
        value, median, low, high = stats.summary(m.samples_ms)
        return Point(
            m.commit, m.date, value, median, low, high, len(m.samples_ms), m.source, m.samples_ms, tuple(m.sample_rounds)
        )
    median = m.value_ms if m.source == "median" else None
    return Point(m.commit, m.date, m.value_ms, median, None, None, 0, m.source, ())


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
