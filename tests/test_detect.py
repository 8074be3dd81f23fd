"""The alert rule (kvtracker.detect) on series with planted levels, and on the p95
series that ``build_series`` makes of measurements."""

import numpy as np
import pytest

from kvtracker import detect
from kvtracker.read import Measurement
from kvtracker.series import build_series

BENCH = "bench_x.X.time_x"


def noisy(levels, sigma=0.03, seed=0):
    """``levels`` (one per commit) times lognormal noise of ``sigma``."""
    levels = np.asarray(levels, dtype=float)
    return levels * np.random.default_rng(seed).lognormal(0, sigma, levels.size)


def flagged(values, **kw):
    return [s.index for s in detect.shifts_up(values, **kw) if s.confirmed]


def test_a_step_is_flagged_at_its_first_commit_with_its_levels():
    [shift] = detect.shifts_up(noisy([1.0] * 30 + [1.3] * 10))
    assert shift.index == 30 and shift.confirmed
    assert shift.reference == pytest.approx(1.0, abs=0.03) and shift.change == pytest.approx(0.3, abs=0.05)


def test_a_step_under_the_threshold_is_not_a_flag():
    assert flagged(noisy([1.0] * 30 + [1.07] * 20, sigma=0.01)) == []


def test_a_new_level_within_the_noise_waits_for_confirm_commits():
    values = noisy([1.0] * 30 + [1.15] * 2)
    [shift] = detect.shifts_up(values)
    assert (shift.index, shift.confirmed) == (30, False)  # tentative
    assert flagged(noisy([1.0] * 30 + [1.15] * 3)) == [30]


@pytest.mark.parametrize(
    "levels",
    [
        [1.0] * 30 + [1.5],  # one slow newest commit
        [1.0] * 30 + [1.5] + [1.0] * 10,  # one slow commit between normal ones
        [1.0] * 30 + [1.5, 1.5] + [1.0] * 10,  # a 2-commit burst that came back
    ],
)
def test_what_is_not_a_new_level_is_never_a_flag(levels):
    assert flagged(noisy(levels)) == []


def test_a_slow_commit_just_before_a_step_does_not_mask_it_and_leaves_the_step_a_candidate():
    [shift] = detect.shifts_up(noisy([1.0] * 28 + [1.6, 1.0] + [1.25] * 10))
    assert shift.confirmed and shift.index <= 30 and 30 in shift.candidates


def test_a_fast_measured_commit_after_a_step_leaves_the_step_named_and_uncertain():
    values = [1.0] * 20 + [1.5, 1.0] + [1.5] * 18  # the commit after the step measured at the old level
    [shift] = detect.shifts_up(values)
    assert (shift.index, shift.settled, shift.candidates) == (20, 22, (20, 21, 22))


def test_a_certain_step_still_has_the_next_commit_as_a_candidate():
    [shift] = detect.shifts_up(noisy([1.0] * 30 + [1.3] * 10))
    assert shift.candidates == (30, 31)


def test_a_step_is_re_measured_against_the_last_commit_of_its_reference_level():
    [step] = detect.shifts_up(noisy([1.0] * 30 + [1.5] * 5, seed=1))
    assert step.before == 29  # the commit before it
    # A level within the threshold in between (a change point the rule does not flag) is not
    # the reference: the flagged change is measured from the level before it, and so is P.
    [step] = detect.shifts_up(noisy([1.0] * 20 + [1.05] * 10 + [1.5] * 5, sigma=0.005, seed=1))
    assert (step.index, step.before) == (30, 19) and step.change == pytest.approx(0.5, abs=0.02)


def test_a_new_level_is_the_median_of_its_own_commits_when_the_change_point_is_placed_early():
    values = [1.101, 1.048, 1.03, 1.05, 1.071, 1.462, 3.1]  # the change point falls at the 1.462
    assert detect.levels(values)[1] == [0, 5, 7]
    [shift] = detect.shifts_up(values)
    assert (shift.index, shift.level) == (6, 3.1)  # not the median of 1.462 and 3.1
    assert shift.before == 4  # the reference's segment ends at the change point


def test_a_tentative_names_the_first_commit_of_its_level_never_the_one_that_came_back():
    [shift] = detect.shifts_up(noisy([0.170] * 20 + [0.269, 0.174]))
    assert shift.index == 20 and not shift.confirmed


def test_creep_under_the_threshold_per_commit_adds_up_to_a_flag():
    creep = [1.0] * 30 + [1 + 0.01 * k for k in range(1, 16)] + [1.15] * 5
    [index] = flagged(noisy(creep, sigma=0.01))
    assert 30 <= index <= 45


def test_a_step_later_reverted_stays_flagged_and_a_new_one_is_measured_from_the_improvement():
    assert flagged(noisy([1.0] * 20 + [1.3] * 8 + [1.0] * 8)) == [20]
    # 1.0 -> 0.7 (an improvement held) -> 0.85: +21% from the improved level, not back at 1.0
    assert flagged(noisy([1.0] * 20 + [0.7] * 10 + [0.85] * 10)) == [30]


@pytest.mark.parametrize(
    "levels",
    [
        [1.0] * 20 + [0.6] * 10 + [1.0] * 10,  # a runner that switched speed, and back
        [1.0] * 10 + [0.6] * 10 + [1.02] * 10 + [0.6] * 5 + [0.98] * 5,  # and again
        [1.0] * 20 + [0.7] * 10 + [0.95] * 10,  # an improvement undone, to within the threshold
    ],
)
def test_a_return_to_a_level_held_before_a_drop_is_not_a_flag(levels):
    assert flagged(noisy(levels)) == []


def test_a_rise_beyond_the_level_held_before_a_drop_is_a_flag():
    assert flagged(noisy([1.0] * 20 + [0.6] * 10 + [1.3] * 10)) == [30]


def test_a_level_far_beyond_the_noise_is_marked_on_its_first_commit_but_not_confirmed():
    [shift] = detect.shifts_up(noisy([1.0] * 12 + [1.6]))
    assert (shift.index, shift.confirmed, shift.far) == (12, False, True)
    [shift] = detect.shifts_up(noisy([1.0] * 12 + [1.6, 1.6, 1.6]))
    assert (shift.confirmed, shift.far) == (True, False)


def test_without_rounds_a_level_needs_history_before_it_is_far_beyond_the_noise():
    assert not any(s.far for s in detect.shifts_up(noisy([1.0] * 3 + [1.6])))


def test_with_rounds_one_commit_before_suffices_if_the_rounds_do_not_overlap():
    values = [1.0, 1.6]
    apart = [(0.95, 1.05), (1.5, 1.7)]
    overlapping = [(0.95, 1.55), (1.5, 1.7)]
    [shift] = detect.shifts_up(values, spreads=apart)
    assert (shift.index, shift.far, shift.reference, shift.level) == (1, True, 1.0, 1.6)
    assert detect.shifts_up(values, spreads=overlapping) == []


def test_budget_stretches_start_where_the_budget_is_first_exceeded_for_good():
    assert detect.budget_starts([1, 6, 6, 6, 1, 7, 1, 8, 8], budget=5) == [1, 7]
    assert detect.budget_starts([6, 6], budget=5) == [0]
    assert detect.budget_starts([1, 1, 6], budget=5) == []


def measurement(commit, samples=(), value=None, benchmark=BENCH):
    source = "samples" if len(samples) else "track"
    value = value if value is not None else float(np.median(samples))
    return Measurement(benchmark, "box", "env", commit, 0, source, tuple(samples), value, 1)


def test_a_tail_only_step_is_flagged_on_the_p95_and_a_median_step_on_both():
    rng = np.random.default_rng(1)
    commits = [f"c{i}" for i in range(24)]
    ms = []
    for i, c in enumerate(commits):
        samples = 1.0 + rng.exponential(0.05, 200)
        if i >= 8:
            samples *= 1.3  # every call
        if i >= 16:
            samples[::10] += 3.0  # 1 call in 10
        ms.append(measurement(c, samples))
    [series] = build_series(ms, commits, lambda name: None)
    flags = detect.regression_flags(series)
    assert [(f.commit, f.statistic) for f in flags] == [("c8", "p95+median"), ("c16", "p95")]
    assert flags[1].previous_commit == "c15"
    assert [m.statistic for m in flags[0].moves] == ["p95", "median"]


def test_a_median_and_a_p95_step_a_few_commits_apart_are_one_change_at_the_first():
    median = [1.0] * 20 + [1.17] * 12
    p95 = [1.5] * 22 + [2.4] * 10  # the same change, seen two commits later in the noisier p95
    [change] = detect.changes({"p95": noisy(p95), "median": noisy(median, seed=1)})
    assert change.index == 20 and change.statistic == "p95+median"
    assert {m.statistic: round(m.change, 1) for m in change.moves} == {"p95": 0.6, "median": 0.2}


def test_series_follow_the_branch_order_and_leave_other_commits_out():
    commits = ["a", "b", "c"]
    ms = [measurement(c, value=v) for c, v in [("c", 3.0), ("a", 1.0), ("pr", 9.0), ("b", 2.0)]]
    [series] = build_series(ms, commits, lambda name: None)
    assert [p.commit for p in series.points] == commits
    assert [p.p95 for p in series.points] == [1.0, 2.0, 3.0]


def test_a_zero_or_nan_p95_is_left_out_of_detection_and_short_series_have_no_flag():
    commits = [f"c{i}" for i in range(12)]
    values = [1.0] * 5 + [0.0, float("nan")] + [2.0] * 5
    [series] = build_series([measurement(c, value=v) for c, v in zip(commits, values)], commits, lambda n: None)
    assert [f.commit for f in detect.regression_flags(series)] == ["c7"]
    for n in (1, 2):
        [short] = build_series([measurement(c, value=1.0) for c in commits[:n]], commits, lambda n: None)
        assert detect.analyze([short]).flags == []
