"""The tracker's statistics on generated samples whose quantiles are known exactly."""

import math

import numpy as np
import pytest

from kvtracker import stats

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
        _, _, low, high = stats.summary(rng.exponential(1, 200))
        covered += low <= EXPONENTIAL_P95 <= high
    assert covered / trials >= 0.92


def test_p95_ci_is_unbounded_above_when_too_few_samples():
    value, median, low, high = stats.summary(np.arange(20.0))
    assert value == pytest.approx(18.05)
    assert low < value and high == math.inf


def test_ratio_ci_sees_a_slowdown_in_only_the_tail():
    """1 call in 10 five times slower: the median stays, the p95 ratio is ~5 and significant."""
    rng = np.random.default_rng(3)
    base = [rng.exponential(1.0, 100) + 1.0 for _ in range(2)]
    head = [rng.exponential(1.0, 100) + 1.0 for _ in range(2)]
    for part in head:
        part[::10] += 20.0
    assert np.median(np.concatenate(head)) == pytest.approx(np.median(np.concatenate(base)), rel=0.25)
    ratio, low, high = stats.quantile_ratio_ci(base, head)
    assert low > 2.0 and low <= ratio <= high
    assert stats.is_significant_regression(ratio, low, rise=1.0, threshold=0.10)


def test_ratio_ci_of_identical_distributions_straddles_one():
    rng = np.random.default_rng(4)
    base, head = [rng.exponential(1, 200)], [rng.exponential(1, 200)]
    ratio, low, high = stats.quantile_ratio_ci(base, head)
    assert low < 1.0 < high
    assert not stats.is_significant_regression(ratio, low, rise=0.0, threshold=0.10)


def test_ratio_ci_widens_with_the_spread_between_rounds():
    """One round of HEAD ran 60% slow throughout (a busy process): the pooled p95 rose, and a
    bootstrap over the samples alone calls it significant; over the rounds it is not."""
    rng = np.random.default_rng(7)
    base = [rng.exponential(1.0, 100) + 1.0 for _ in range(2)]
    head = [rng.exponential(1.0, 100) + 1.0 for _ in range(2)]
    head[1] = head[1] * 1.6
    ratio, low, _ = stats.quantile_ratio_ci(base, head)
    pooled_ratio, pooled_low, _ = stats.quantile_ratio_ci([np.concatenate(base)], [np.concatenate(head)])
    assert ratio == pooled_ratio > 1.2
    assert pooled_low > 1.0 > low


def test_ratio_ci_is_reproducible():
    rng = np.random.default_rng(5)
    base, head = [rng.exponential(1, 100)], [rng.exponential(1, 100)]
    assert stats.quantile_ratio_ci(base, head) == stats.quantile_ratio_ci(base, head)


def test_split_rounds_cuts_the_samples_in_asvs_order():
    assert stats.split_rounds([1, 2, 3, 4, 5, 6], 2) == [(1, 2, 3), (4, 5, 6)]
    assert stats.split_rounds([1, 2, 3], 2) == [(1, 2), (3,)]
    assert stats.split_rounds([1], 3) == [(1,)]


def test_split_rounds_by_a_fixed_round_size_keeps_appended_rounds_apart():
    first = [1, 1, 1, 2, 2, 2]  # asv run: 2 rounds of 3
    again = first + [3, 3, 3, 4, 4, 4]  # asv run --append-samples: 2 more rounds after them
    assert stats.split_rounds(first, 2, size=3) == [(1, 1, 1), (2, 2, 2)]
    assert stats.split_rounds(again, 2, size=3) == [(1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 4)]
    assert stats.split_rounds(again, 2) == [(1, 1, 1, 2, 2, 2), (3, 3, 3, 4, 4, 4)]  # without the size: wrong
    assert stats.split_rounds([1, 2, 3, 4, 5], 2, size=3) == [(1, 2, 3), (4, 5)]  # sizes that do not divide


def test_the_history_bound_is_an_empirical_quantile_of_neighbouring_ratios():
    rng = np.random.default_rng(9)
    noise = rng.lognormal(0, 0.05, 200)
    ratios = np.exp(np.abs(np.diff(np.log(noise))))
    bound = stats.neighbour_ratio_bound(noise)
    assert np.mean(ratios > bound) <= 0.02 and np.mean(ratios >= bound) > 0.02 - 1 / len(ratios)
    stepped = noise * np.r_[np.ones(100), np.full(100, 2.0)]  # one step of x2 is one ratio of 199
    assert stats.neighbour_ratio_bound(stepped) == pytest.approx(bound, rel=0.05)
    assert stats.neighbour_ratio_bound(noise[: stats.MIN_HISTORY - 1]) is None


def test_the_history_bound_holds_a_machines_two_speeds():
    """A runner that switches between two speeds 1.8x apart, a third of the time: a Gaussian
    spread of successive differences would call x1.8 rare; the empirical bound does not."""
    rng = np.random.default_rng(3)
    speeds = np.where(rng.random(120) < 1 / 3, 1.8, 1.0) * rng.lognormal(0, 0.02, 120)
    assert stats.neighbour_ratio_bound(speeds) > 1.7


def test_with_few_commits_the_bound_is_the_largest_ratio_seen():
    values = [1.0, 1.1, 1.0, 1.05, 1.0, 1.3, 1.25]
    assert stats.neighbour_ratio_bound(values) == pytest.approx(1.3)


def test_a_regression_needs_the_threshold_the_interval_and_the_floor():
    assert stats.is_significant_regression(1.5, 1.2, rise=20.0, threshold=0.10, min_rise=15.0)
    assert not stats.is_significant_regression(1.5, 1.2, rise=10.0, threshold=0.10, min_rise=15.0)
    assert not stats.is_significant_regression(1.5, 0.9, rise=20.0, threshold=0.10)  # could be noise
    assert not stats.is_significant_regression(1.08, 1.02, rise=20.0, threshold=0.10)  # under the threshold
    assert not stats.is_significant_regression(1.5, 1.2, rise=20.0, threshold=0.10, history_bound=1.6)  # history: noise
    assert stats.is_significant_regression(1.5, None, rise=20.0, threshold=0.10, history_bound=1.4)  # a track
