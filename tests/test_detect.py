"""The p95 series analysis (kvbench.tracker.series) on generated samples."""

import numpy as np

from kvbench.tracker.read import Measurement
from kvbench.tracker.series import budget_flags, build_series, regression_flags

BENCH = "bench_x.X.time_x"


def measurement(commit, samples_ms=(), value_ms=None, benchmark=BENCH):
    source = "samples" if len(samples_ms) else "track"
    return Measurement(
        benchmark,
        "box",
        "env",
        commit,
        0,
        source,
        tuple(samples_ms),
        value_ms if value_ms is not None else float(np.median(samples_ms)),
        1,
    )


def one_series(measurements, commits, budget=None):
    [series] = build_series(measurements, commits, lambda name: budget)
    return series


def test_a_commit_just_before_a_step_is_not_blamed_for_noise_alone():
    """c1 is c0 scaled by 1.2 (over the 10% threshold, but 60 samples cannot tell); c2 is 10x."""
    base = np.random.default_rng(0).exponential(1.0, 60)
    samples = [base, base * 1.2, base * 10, base * 10]
    commits = ["c0", "c1", "c2", "c3"]
    series = one_series([measurement(c, s) for c, s in zip(commits, samples)], commits)
    flags = regression_flags(series, threshold=0.10)
    assert [(f.commit, f.previous_commit) for f in flags] == [("c2", "c1")]
    ratio, low, high = flags[0].ratio_ci
    assert low > 1.1 and ratio == flags[0].p95_after_ms / flags[0].p95_before_ms


def test_series_follow_the_branch_order_and_leave_other_commits_out():
    commits = ["a", "b", "c"]
    measurements = [measurement(c, value_ms=v) for c, v in [("c", 3.0), ("a", 1.0), ("pr", 9.0), ("b", 2.0)]]
    series = one_series(measurements, commits)
    assert [p.commit for p in series.points] == commits
    assert [p.p95_ms for p in series.points] == [1.0, 2.0, 3.0]


def test_parameter_combinations_and_machines_are_series_of_their_own():
    ms = [
        measurement("a", value_ms=1.0, benchmark=f"{BENCH}('p')"),
        measurement("a", value_ms=1.0, benchmark=f"{BENCH}('q')"),
    ]
    assert [s.benchmark for s in build_series(ms, ["a"], lambda name: None)] == [
        f"{BENCH}('p')",
        f"{BENCH}('q')",
    ]


def test_track_values_without_samples_are_flagged_by_the_step_rule_alone():
    commits = ["c0", "c1", "c2", "c3"]
    series = one_series([measurement(c, value_ms=v) for c, v in zip(commits, [1.0, 1.0, 2.0, 2.0])], commits)
    [flag] = regression_flags(series, threshold=0.10)
    assert (flag.commit, flag.p95_before_ms, flag.p95_after_ms, flag.ratio_ci) == ("c2", 1.0, 2.0, None)


def test_budget_flag_names_the_first_commit_over_budget():
    commits = ["c0", "c1", "c2", "c3"]
    series = one_series(
        [measurement(c, value_ms=v) for c, v in zip(commits, [4.0, 6.0, 6.5, 7.0])], commits, budget=5.0
    )
    [flag] = budget_flags(series)
    assert (flag.kind, flag.commit, flag.p95_before_ms, flag.p95_after_ms, flag.budget_ms) == (
        "budget",
        "c1",
        4.0,
        6.0,
        5.0,
    )
    assert budget_flags(one_series([measurement("c0", value_ms=9.0)], ["c0"])) == []  # no budget
