"""Change points in a series of floats: E-divisive means with a Student t-test.

The method of Apache Otava (``otava.analysis.compute_change_points``) and of the Hunter paper
(Fleming et al., ICPE 2023), written again without Otava's dependencies (ADR-006). Given the
same series and options it finds the same change points as Otava 0.8.0
(``tests/test_changepoints.py`` checks this against Otava's own output).

1. **Split.** Windows of ``window_len`` points, each starting half a window (or at the last
   change point found) after the previous one. In a window, the E-divisive candidate is the
   split that maximises the energy statistic q-hat (Matteson and James); it is kept while a
   two-sided Student t-test between its two segments gives p <= a relaxed p-value
   (10 x ``max_pvalue``), and the segments are split again.
2. **Merge.** While some point has p > ``max_pvalue``, or a relative change under
   ``min_magnitude``, the weakest one is dropped and its neighbours are tested again
   against their new segments.

Each change point carries its evidence: the mean and (population) standard deviation of the
segment before it and of the one after, and the p-value. ``index`` is the first point of the
new level. Pure functions of the values; nothing here knows commits or benchmarks.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtr

WINDOW_LEN = 50
MAX_PVALUE = 0.001


@dataclass(frozen=True)
class ChangePoint:
    index: int  # the first point after the change
    mean_before: float
    mean_after: float
    std_before: float
    std_after: float
    pvalue: float

    @property
    def forward_change(self):
        """mean_after / mean_before - 1 (0 when mean_before is 0)."""
        return self.mean_after / self.mean_before - 1.0 if self.mean_before else 0.0

    @property
    def magnitude(self):
        """The larger relative change, forwards or backwards (Otava's ``change_magnitude``)."""
        backward = self.mean_before / self.mean_after - 1.0 if self.mean_after else 0.0
        return max(abs(self.forward_change), abs(backward))


def change_points(values, window_len=WINDOW_LEN, max_pvalue=MAX_PVALUE, min_magnitude=0.0):
    """The change points of ``values`` (floats, no gaps), sorted by index."""
    assert window_len >= 2, "window_len below 2: this is a bug in the caller"
    segments = _Segments(values)
    relaxed = max_pvalue * 10 if max_pvalue < 0.05 else max_pvalue * 2 if max_pvalue < 0.5 else max_pvalue
    return _merge(segments, _split(segments, window_len, relaxed), max_pvalue, min_magnitude)


class _Segments:
    """The series, with prefix sums: any segment's mean and deviation in O(1)."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=float)
        self.sums = np.concatenate([[0.0], np.cumsum(self.values)])
        self.squares = np.concatenate([[0.0], np.cumsum(self.values**2)])

    def __len__(self):
        return len(self.values)

    def moments(self, a, b):
        """Mean and population standard deviation of ``values[a:b]`` (0 for one point)."""
        n = b - a
        mean = (self.sums[b] - self.sums[a]) / n
        variance = (self.squares[b] - self.squares[a]) / n - mean * mean if n >= 2 else 0.0
        return mean, math.sqrt(max(variance, 0.0))

    def ttest(self, a, index, b):
        """The evidence of a change at ``index`` between ``values[a:index]`` and
        ``values[index:b]``: two-sided Student's t with pooled variance, fed the population
        deviations (as Otava feeds ``scipy.stats.ttest_ind_from_stats``)."""
        n1, n2 = index - a, b - index
        (mean1, std1), (mean2, std2) = self.moments(a, index), self.moments(index, b)
        pvalue = 1.0
        if n1 + n2 > 2:
            df = n1 + n2 - 2
            pooled = ((n1 - 1) * std1 * std1 + (n2 - 1) * std2 * std2) / df
            scale = math.sqrt(pooled * (1.0 / n1 + 1.0 / n2))
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.float64(mean1 - mean2) / scale
                pvalue = float(2 * stdtr(df, -abs(t)))
        return ChangePoint(index, float(mean1), float(mean2), float(std1), float(std2), pvalue)


def _split(segments, window_len, max_pvalue):
    indices, start, step = set(), 0, window_len // 2
    while start < len(segments):
        found = _divisive(segments, start, min(start + window_len, len(segments)), max_pvalue)
        indices.update(found)
        start = max(found[-1] if found else 0, start + step)
    return sorted(indices)


def _divisive(segments, start, stop, max_pvalue):
    """Indices in ``[start, stop)`` that E-divisive keeps at ``max_pvalue``, sorted."""
    found, best = [], {}  # best split of each interval, computed once
    while True:
        bounds = [start, *found, stop]
        candidates = []
        for a, b in zip(bounds, bounds[1:]):
            if b - a > 1:
                if (a, b) not in best:
                    best[a, b] = _best_split(segments.values[a:b])
                candidates.append((best[a, b], a, b))
        if not candidates:
            return found
        (offset, _), a, b = max(candidates, key=lambda c: c[0][1])
        if segments.ttest(a, a + offset, b).pvalue > max_pvalue:
            return found
        found = sorted([*found, a + offset])


def _best_split(z):
    """``(tau, qhat)``: the split of ``z`` (at ``tau``, 0 < tau < len(z)) maximising q-hat.

    q-hat of ``X = z[:tau]`` (n points) and ``Y = z[tau:kappa]`` (m points), over every
    ``kappa``: 2/(m+n) sum|X-Y| - 2m/((m+n)(n-1)) sum_pairs|X-X| - 2n/((m+n)(m-1)) sum_pairs|Y-Y|
    (a pair term is 0 for a segment of one point). Ties go to the smallest ``tau``, then
    ``kappa``, and a grid with no positive value to its first cell: as Otava does.
    """
    size = len(z)
    prefix = np.abs(z[:, None] - z[None, :]).cumsum(0).cumsum(1)  # prefix[a-1, b-1]: sum of z's distances [:a, :b]
    diagonal = np.diagonal(prefix)
    cross = prefix[:-1, 1:]  # rows tau - 1, columns kappa - 2: distances [:tau, :kappa]
    x_pairs = diagonal[:-1, None]  # distances [:tau, :tau]
    between = cross - x_pairs
    within_y = (diagonal[None, 1:] - 2 * cross + x_pairs) / 2
    between_weight, x_weight, y_weight, valid = _q_weights(size)
    q = np.where(valid, between_weight * between - x_weight * x_pairs / 2 - y_weight * within_y, 0.0)
    row, column = np.unravel_index(np.argmax(q), q.shape)
    return int(row) + 1, float(q[row, column])


@functools.lru_cache(maxsize=256)
def _q_weights(size):
    """q-hat's weights of the pairs between X and Y, inside X and inside Y (m + n = kappa),
    and which cells of the grid are splits."""
    tau, kappa = np.arange(1, size)[:, None].astype(float), np.arange(2, size + 1)[None, :].astype(float)
    n, m = tau, kappa - tau
    with np.errstate(divide="ignore", invalid="ignore"):
        x_weight = np.where(n > 1, 2 * m / ((m + n) * (n - 1)), 0.0)
        y_weight = np.where(m > 1, 2 * n / ((m + n) * (m - 1)), 0.0)
    return 2 / kappa, x_weight, y_weight, kappa > tau


def _with_evidence(segments, indices):
    """Change points at ``indices``, each tested on the segments to its neighbours."""
    bounds = [0, *indices, len(segments)]
    return [segments.ttest(bounds[k], index, bounds[k + 2]) for k, index in enumerate(indices)]


def _merge(segments, indices, max_pvalue, min_magnitude):
    """Otava's merge step, including the points it re-tests after a removal: the two that
    follow the removed one (its left neighbour keeps the evidence it had)."""
    points = _with_evidence(segments, indices)
    while points:
        weakest = max(points, key=lambda p: p.pvalue)
        if weakest.pvalue < max_pvalue:
            weakest = min(points, key=lambda p: p.magnitude)
            if weakest.magnitude > min_magnitude:
                return points
        k = points.index(weakest)
        del points[k]
        retested = _with_evidence(segments, [p.index for p in points])
        points[k : k + 2] = retested[k : k + 2]
    return points
