"""Tests of speed_modes' statistics and of one real (tiny) run: ``pytest tools/test_speed_modes.py``.

Not in the project's suite (``testpaths = tests``): the tool is not part of the package.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed_modes as sm  # noqa: E402


def record(condition, probe_ms, restore_ms, nivcsw=0):
    t = list(np.arange(len(probe_ms)) * 1e-3)
    return {"condition": condition, "probe_ms": probe_ms, "restore_ms": restore_ms, "probe_t_s": t,
            "nivcsw": nivcsw, "nvcsw": 0}


def test_rolling_median_ignores_a_lone_outlier_and_keeps_the_length():
    values = [1.0] * 30 + [50.0] + [1.0] * 30
    smoothed = sm.rolling_median(values, half_window=3)
    assert len(smoothed) == len(values)
    assert set(smoothed) == {1.0}
    assert sm.rolling_median([], half_window=3).size == 0


def test_each_restore_is_divided_by_the_mean_of_the_probes_on_either_side():
    ratios = sm.restore_ratios([0.3, 0.6], [0.1, 0.2, 0.4])
    assert list(ratios) == pytest.approx([2.0, 2.0])


def test_phases_are_runs_of_equal_state_lasting_until_the_next_run_starts():
    times = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    slow = [False, False, True, True, True, False]
    runs = sm.phases(times, slow)
    assert [(r["slow"], r["calls"]) for r in runs] == [(False, 2), (True, 3), (False, 1)]
    assert [r["duration_s"] for r in runs] == pytest.approx([0.2, 0.3, 0.0])
    assert sm.phases([], []) == []


def test_a_process_whose_machine_slows_for_its_second_half_is_half_slow_and_its_ratio_stays():
    fast, slow = [0.04] * 200, [0.07] * 200
    probes = fast + slow + [0.07]
    restores = [0.14] * 200 + [0.245] * 200  # the restore slows by the probe's factor
    level = sm.fast_level([sm.rolling_median(probes)])
    stats = sm.process_stats(record("default", probes, restores), level)
    assert level == pytest.approx(0.04)
    assert stats["slow_share"] == pytest.approx(201 / 401, abs=0.01)
    assert stats["ratio_median"] == pytest.approx(3.5)
    assert stats["ratio_p95"] == pytest.approx(3.5)


def test_summary_marks_processes_fast_or_slow_by_median_and_normalising_removes_the_spread():
    records = []
    for i in range(10):
        speed = 1.0 if i % 2 else 1.75  # half the processes on a slow machine throughout
        probes = [0.04 * speed] * 301
        records.append(record("default", probes, [0.14 * speed] * 300, nivcsw=1))
    records.append(record("probe-only", [0.04] * 301, []))
    summary = sm.summarize(records)
    default, probe_only = summary["conditions"]
    assert default["processes"] == 10 and default["fast_by_median"] == pytest.approx(0.5)
    assert default["mostly_slow"] == pytest.approx(0.5)
    assert default["cv_median_raw"] > 0.2
    assert default["cv_median_norm"] == pytest.approx(0.0, abs=1e-9)
    assert default["nivcsw_total"] == 10
    assert probe_only["restore_median_ms"] is None and probe_only["slow_share_mean"] == 0.0
    lines = []
    sm.render_summary(summary, lines.append)
    assert any(line.startswith("| default | 10 | ") and "| 50.0% |" in line for line in lines)
    assert any(line.startswith("| probe-only | 1 | - |") for line in lines)


def test_phase_summary_gives_each_phase_its_levels_and_durations():
    probes = ([0.04] * 300 + [0.07] * 100) * 3 + [0.07]
    restores = ([0.14] * 300 + [0.25] * 100) * 3
    summary = sm.phase_summary(record("default", probes, restores))
    assert summary["flips"] == 5
    assert summary["phases"]["fast"]["count"] == 3 and summary["phases"]["slow"]["count"] == 3
    assert summary["phases"]["slow"]["probe_median_us"] == pytest.approx(70.0)
    assert summary["phases"]["slow"]["restore_median_ms"] == pytest.approx(0.25)
    assert summary["phases"]["fast"]["restore_median_ms"] == pytest.approx(0.14)


def test_an_unknown_condition_is_one_line_naming_it(tmp_path):
    result = subprocess.run([sys.executable, sm.__file__, "--conditions", "default,nope", "--out", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"speed_modes: unknown condition nope: pick from {', '.join(sm.FULL)} (--list)"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the tool reads /proc")
def test_a_tiny_real_run_interleaves_conditions_and_writes_every_file(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, sm.__file__, "--conditions", "probe-only,thp-off,gc-off", "--processes", "2",
                             "--calls", "40", "--chunk", "10", "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (out / "processes.jsonl").read_text().splitlines()]
    assert [r["condition"] for r in rows] == ["probe-only", "thp-off", "gc-off"] * 2
    thp = [r for r in rows if r["condition"] == "thp-off"]
    assert all(r["thp"] == "0" for r in thp)  # the prctl reached the process
    assert all(r["device"].startswith("Device(") and r["stats"]["restore_median_ms"] > 0 for r in thp)
    assert all(len(r["chunks"]) == 4 and sum(c["calls"] for c in r["chunks"]) == 41 for r in rows)
    calls = np.load(out / "calls.npz")
    assert calls[thp[0]["calls_key"] + "-restore_ms"].shape == (40,)
    assert calls[thp[0]["calls_key"] + "-probe_ms"].shape == (41,)
    summary = json.loads((out / "summary.json").read_text())
    assert [c["condition"] for c in summary["conditions"]] == ["probe-only", "thp-off", "gc-off"]
    assert "| thp-off | 2 |" in (out / "summary.md").read_text()
