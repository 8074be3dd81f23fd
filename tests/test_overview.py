"""The p95 page's row status (``overview.row_of``) on series built point by point."""

import math

from kvtracker import overview
from kvtracker.detect import Flag
from kvtracker.series import Point, Series

BENCH = "bench_x.X.time_x"


def series_of(p95s, budget_ms=None):
    points = [Point(f"c{i}", i, v, v, None, None, 1, "track", ()) for i, v in enumerate(p95s)]
    return Series(BENCH, "m", "env", points, budget_ms)


def regression(commit, before_ms, after_ms):
    return Flag("regression", BENCH, "m", "env", commit, None, before_ms, after_ms)


def test_an_older_regression_that_still_holds_is_reported_when_a_newer_one_went_back_to_its_level():
    s = series_of([1.0] * 5 + [2.0] * 5 + [4.0] * 5 + [2.0] * 5)  # 1 -> 2 -> 4 -> back to 2
    flags = [regression("c5", 1.0, 2.0), regression("c10", 2.0, 4.0)]
    row = overview.row_of(s, flags, None, [])
    assert (row.status, row.commit) == ("regression", "c5") and math.isclose(row.change, 1.0)


def test_the_newest_regression_that_holds_is_named():
    s = series_of([1.0] * 5 + [2.0] * 5 + [4.0] * 5)
    row = overview.row_of(s, [regression("c5", 1.0, 2.0), regression("c10", 2.0, 4.0)], None, [])
    assert (row.status, row.commit) == ("regression", "c10")


def test_rows_with_an_unknown_change_sort_after_the_known_ones_of_their_status():
    rows = [overview.Row(series_of([1.0]), "ok", "c0", change, None, None, None) for change in (float("nan"), 0.5, None, -0.8)]
    assert [r.change for r in overview.ordered(rows)][:2] == [-0.8, 0.5]
