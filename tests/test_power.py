"""Detection power on replayed real noise (kvbench.tracker.power, tests/data/noise-cpu.json):
fixed seeds, so a change to the detector that loses power, or cries wolf more, fails here.

The floors are the ones measured on this machine's recorded noise (docs/tracker.md, "Detection
power"), a little below the measured values so that a change in floating-point detail does
not trip them; where they are below the issue's goals, docs/tracker.md says why.
"""

import os

import pytest

from kvbench.tracker import power, replay

NOISE = os.path.join(os.path.dirname(__file__), "data", "noise-cpu.json")
SEEDS = range(16)
BENCHMARKS = (  # a fast restore with samples, a slow one, and a track p95
    "bench_reconstruct.Reconstruct8k.time_reconstruct_8k('zero_copy')",
    "bench_reconstruct.ReconstructContexts.time_reconstruct('gather', 8192)",
    "bench_tail.RestoreTail.track_p95_ms('zero_copy')",
)
# scenario -> (least recall, or most share flagged where nothing is to be found; most false
# flags per 100 commits), for the main job's detector (the alert rule, then re-measurement).
FLOORS = {
    "no change": (0.0, 0.2),
    "one slow-measured commit": (0.05, 0.2),
    "2-commit slow burst, recovered": (0.05, 0.3),
    "median +20%": (0.28, 0.5),
    "tail-only p95 +50%": (0.30, 0.45),
    "median +20% masked by a slow commit 2 before": (0.25, 0.55),
    "median +20% reverted 8 commits later": (0.25, 0.4),
}


@pytest.fixture(scope="module")
def rows():
    _, noises = replay.load_noise(NOISE)
    noises = [n for n in noises if n.benchmark in BENCHMARKS]
    detectors = [d for d in power.available_detectors() if d.name == "kvbench+confirm"]
    return {r["scenario"]: r for r in power.measure_power(noises, detectors, SEEDS, "ci")}


@pytest.mark.parametrize("scenario", sorted(FLOORS))
def test_detection_power_stays_at_its_measured_level(rows, scenario):
    row, (floor, most_false) = rows[scenario], FLOORS[scenario]
    if row["recall"] is None:  # nothing to find: how often the noise was flagged
        assert (row["flagged_near_slow"] or 0) <= floor, row
    else:
        assert row["recall"] >= floor, row
    assert row["false_per_100_commits"] <= most_false, row
