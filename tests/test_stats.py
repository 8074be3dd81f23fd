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
    ratio, low, high = stats.p95_ratio_ci(base, head)
    assert low > 2.0 and low <= ratio <= high
    assert stats.is_significant_regression(ratio, low, rise=1.0, threshold=0.10)


def test_ratio_ci_of_identical_distributions_straddles_one():
    rng = np.random.default_rng(4)
    base, head = [rng.exponential(1, 200)], [rng.exponential(1, 200)]
    ratio, low, high = stats.p95_ratio_ci(base, head)
    assert low < 1.0 < high
    assert not stats.is_significant_regression(ratio, low, rise=0.0, threshold=0.10)


def test_ratio_ci_widens_with_the_spread_between_rounds():
    """One round of HEAD ran 60% slow throughout (a busy process): the pooled p95 rose, and a
    bootstrap over the samples alone calls it significant; over the rounds it is not."""
    rng = np.random.default_rng(7)
    base = [rng.exponential(1.0, 100) + 1.0 for _ in range(2)]
    head = [rng.exponential(1.0, 100) + 1.0 for _ in range(2)]
    head[1] = head[1] * 1.6
    ratio, low, _ = stats.p95_ratio_ci(base, head)
    pooled_ratio, pooled_low, _ = stats.p95_ratio_ci([np.concatenate(base)], [np.concatenate(head)])
    assert ratio == pooled_ratio > 1.2
    assert pooled_low > 1.0 > low


def test_ratio_ci_widens_with_the_branchs_run_to_run_noise():
    rng = np.random.default_rng(8)
    base, head = [rng.exponential(1, 400) + 1], [rng.exponential(1, 400) * 1.6 + 1]
    ratio, low, high = stats.p95_ratio_ci(base, head)
    _, noisy_low, noisy_high = stats.p95_ratio_ci(base, head, noise_sigma=0.2)
    assert low > 1.0 > noisy_low and noisy_high > high


def test_ratio_ci_is_reproducible():
    rng = np.random.default_rng(5)
    base, head = [rng.exponential(1, 100)], [rng.exponential(1, 100)]
    assert stats.p95_ratio_ci(base, head) == stats.p95_ratio_ci(base, head)


def test_split_rounds_cuts_the_samples_in_asvs_order():
    assert stats.split_rounds([1, 2, 3, 4, 5, 6], 2) == [(1, 2, 3), (4, 5, 6)]
    assert stats.split_rounds([1, 2, 3], 2) == [(1, 2), (3,)]
    assert stats.split_rounds([1], 3) == [(1,)]


def test_run_to_run_sigma_is_the_spread_of_the_series_not_of_its_steps():
    rng = np.random.default_rng(9)
    noise = rng.lognormal(0, 0.05, 60)
    assert stats.run_to_run_sigma(noise) == pytest.approx(0.05, rel=0.3)
    stepped = noise * np.r_[np.ones(30), np.full(30, 2.0)]  # one step of x2 barely moves it
    assert stats.run_to_run_sigma(stepped) == pytest.approx(stats.run_to_run_sigma(noise), rel=0.1)
    assert stats.run_to_run_sigma(noise[: stats.MIN_HISTORY - 1]) is None


def test_a_regression_needs_the_threshold_the_interval_and_the_floor():
    assert stats.is_significant_regression(1.5, 1.2, rise=20.0, threshold=0.10, min_rise=15.0)
    assert not stats.is_significant_regression(1.5, 1.2, rise=10.0, threshold=0.10, min_rise=15.0)
    assert not stats.is_significant_regression(1.5, 0.9, rise=20.0, threshold=0.10)  # could be noise
    assert not stats.is_significant_regression(1.08, 1.02, rise=20.0, threshold=0.10)  # under the threshold
