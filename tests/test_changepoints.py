"""kvtracker.changepoints against Apache Otava's own output, and on planted levels.

tests/data/otava_reference.json holds fixed series and the change points Otava 0.8.0's
``compute_change_points`` found in them (written by tools/otava-reference.py).
"""

import json
import os

import numpy as np
import pytest

from kvtracker import changepoints

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "otava_reference.json")
with open(REFERENCE, encoding="utf-8") as f:
    CASES = json.load(f)["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_same_change_points_and_pvalues_as_otava(case):
    found = changepoints.change_points(
        case["values"], case["window_len"], case["max_pvalue"], case["min_magnitude"]
    )
    assert [p.index for p in found] == [p["index"] for p in case["change_points"]]
    assert [p.pvalue for p in found] == pytest.approx([p["pvalue"] for p in case["change_points"]], rel=1e-6)


def test_the_reference_holds_change_points_to_compare():
    """A reference of empty answers would make the comparison above vacuous."""
    assert sum(len(c["change_points"]) for c in CASES) >= 20


def test_a_planted_step_is_found_at_its_first_point_with_its_levels():
    values = np.r_[np.full(20, 1.0), np.full(15, 1.3)] * np.random.default_rng(1).lognormal(0, 0.02, 35)
    [point] = changepoints.change_points(values)
    assert point.index == 20
    assert point.forward_change == pytest.approx(0.3, abs=0.03)
    assert point.pvalue < 1e-6


def test_noise_alone_has_no_change_point():
    values = np.random.default_rng(2).lognormal(0, 0.05, 120)
    assert changepoints.change_points(values) == []


def test_a_stricter_pvalue_or_magnitude_keeps_fewer_points():
    case = next(c for c in CASES if c["name"] == "noise-w50-p0.05-m0.0")
    loose = changepoints.change_points(case["values"], 50, 0.05)
    assert len(changepoints.change_points(case["values"], 50, 0.001)) < len(loose)
    assert len(changepoints.change_points(case["values"], 50, 0.05, min_magnitude=0.5)) < len(loose)
