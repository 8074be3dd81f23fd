"""The tracker's statistics on generated samples whose quantiles are known exactly."""

import math

import numpy as np
import pytest

from kvbench.tracker import stats

UNIFORM_P95 = 0.95  # of U(0, 1)
EXPONENTIAL_P95 = -math.log(0.05)  # of Exp(1): 2.9957


def test_p95_matches_exact_quantiles_of_large_samples():
    rng = np.random.default_rng(1)
    assert stats.p95(rng.uniform(0, 1, 200_000)) == pytest.approx(UNIFORM_P95, abs=0.005)
    assert stats.p95(rng.exponential(1, 200_000)) == pytest.approx(EXPONENTIAL_P95, rel=0.02)


def test_p95_interpolates_between_order_statistics():
    assert stats.p95(list(range(21))) == 19.0  # 0.95 * 20 = 19: the 20th smallest exactly
    assert stats.p95([1.0, 2.0]) == pytest.approx(1.95)


def test_p95_ci_covers_the_true_p95_at_least_nominally():
    """Over 400 exponential samples of 200, the 95% CI misses the exact p95 at most ~5% of the time."""
    rng = np.random.default_rng(2)
    trials = 400
    covered = 0
    for _ in range(trials):
        _, low, high = stats.p95_with_ci(rng.exponential(1, 200))
        covered += low <= EXPONENTIAL_P95 <= high
    assert covered / trials >= 0.92


def test_p95_ci_is_unbounded_above_when_too_few_samples():
    value, low, high = stats.p95_with_ci(np.arange(20.0))
    assert value == pytest.approx(18.05)
    assert low < value and high == math.inf


def test_ratio_ci_sees_a_slowdown_in_only_the_tail():
    """1 call in 10 five times slower: the median stays, the p95 ratio is ~5 and significant."""
    rng = np.random.default_rng(3)
    base = rng.exponential(1.0, 200) + 1.0
    head = rng.exponential(1.0, 200) + 1.0
    head[::10] += 20.0
    assert np.median(head) == pytest.approx(np.median(base), rel=0.25)
    ratio, low, high = stats.p95_ratio_ci(base, head)
    assert low > 2.0 and low <= ratio <= high
    assert stats.is_significant_regression(low, stats.p95(head) - stats.p95(base), threshold=0.10)


def test_ratio_ci_of_identical_distributions_straddles_one():
    rng = np.random.default_rng(4)
    base, head = rng.exponential(1, 200), rng.exponential(1, 200)
    ratio, low, high = stats.p95_ratio_ci(base, head)
    assert low < 1.0 < high
    assert not stats.is_significant_regression(low, stats.p95(head) - stats.p95(base), threshold=0.10)


def test_ratio_ci_is_reproducible():
    rng = np.random.default_rng(5)
    base, head = rng.exponential(1, 100), rng.exponential(1, 100)
    assert stats.p95_ratio_ci(base, head) == stats.p95_ratio_ci(base, head)


def test_find_steps_finds_a_planted_step_at_its_commit():
    series = [1.0, 1.05, 0.97, 3.0, 3.1, 2.9]
    steps = stats.find_steps(series, threshold=0.10)
    assert [s.index for s in steps] == [3]
    assert steps[0].before == (1, 2) and steps[0].after == (3, 4)


def test_find_steps_finds_two_steps_in_a_row_of_levels():
    assert [s.index for s in stats.find_steps([1, 1, 5, 5, 30, 30])] == [2, 4]


def test_find_steps_with_a_noise_floor_needs_the_rise_to_exceed_it():
    series = [1.0, 1.0, 4.0, 4.0, 20.0, 20.0]
    assert [s.index for s in stats.find_steps(series, threshold=0.10, min_rise=5.0)] == [4]


def test_significance_needs_the_rise_over_the_noise_floor():
    assert stats.is_significant_regression(3.0, rise=20.0, threshold=1.0, min_rise=15.0)
    assert not stats.is_significant_regression(3.0, rise=10.0, threshold=1.0, min_rise=15.0)
    assert not stats.is_significant_regression(1.5, rise=20.0, threshold=1.0, min_rise=15.0)


def test_find_steps_ignores_noise_within_the_threshold():
    rng = np.random.default_rng(6)
    series = list(1.0 + 0.02 * rng.standard_normal(40))
    assert stats.find_steps(series, threshold=0.10) == []


@pytest.mark.parametrize(
    "series",
    [
        [1.0, 1.0, 1.0, 1.0, 3.0],  # one slow commit at the tip: unconfirmed
        [1.0, 1.0, 3.0, 1.0, 1.0],  # one slow commit between normal ones
        [1.0, 1.0, 1.09, 1.09, 1.09],  # a 9% step under a 10% threshold
    ],
)
def test_find_steps_rejects_what_is_not_a_confirmed_step(series):
    assert stats.find_steps(series, threshold=0.10) == []


def test_find_steps_skips_unmeasured_commits():
    steps = stats.find_steps([1.0, None, 1.0, None, 3.0, None, 3.0], threshold=0.10)
    assert [s.index for s in steps] == [4]
    assert steps[0].before == (0, 2) and steps[0].after == (4, 6)


def test_find_steps_reports_a_step_that_was_later_undone():
    assert [s.index for s in stats.find_steps([1, 1, 4, 4, 1, 1])] == [2]


def test_find_over_budget_flags_the_start_of_each_confirmed_stretch():
    assert stats.find_over_budget([1, 6, 6, 6, 1, 7, 1, 8, 8], budget=5) == [1, 7]
    assert stats.find_over_budget([6, 6], budget=5) == [0]
    assert stats.find_over_budget([1, 1, 6], budget=5) == []
    assert stats.find_over_budget([None, 6, None, 6], budget=5) == [1]
