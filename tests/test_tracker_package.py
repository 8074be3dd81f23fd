"""The tracker as another asv project installs it: ``pip install ./tracker`` into a fresh
virtualenv that has no MLX, then ``kvcache-tracker`` on that project's own results.

The other project: a git history of 10 commits, a string-joining benchmark whose asv median
(no raw samples, as most published asv results) steps up by 30% at commit 6, and a parsing
benchmark that stays put. Results are written by asv's own ``Results`` class.
"""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
from asv.results import Results
from asv.runner import BenchmarkResult
from asv.util import write_json

from conftest import asv_repo, git

ROOT = Path(__file__).resolve().parent.parent
MACHINE = "ci-runner"
JOIN, PARSE = "bench_text.TimeJoin.time_join", "bench_text.TimeParse.time_parse"
STEP = 6  # the first commit where time_join is 30% slower


@pytest.fixture(scope="module")
def tracker_venv(tmp_path_factory):
    """A fresh virtualenv with only ``pip install ./tracker`` (and what it pulls in)."""
    folder = tmp_path_factory.mktemp("fresh") / "venv"
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    done = subprocess.run([python, "-m", "pip", "install", "-q", str(ROOT / "tracker")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return folder / "bin"


@pytest.fixture
def other_project(tmp_path):
    repo = asv_repo(tmp_path / "strings", '{"version": 1, "project": "strings", "repo": ".", "branches": ["main"],'
                                          ' "results_dir": "results", "html_dir": "html"}\n')
    commits = []
    for i in range(10):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"change {i}")
        commits.append(git(repo, "rev-parse", "HEAD"))
    os.makedirs(repo / "results" / MACHINE)
    write_json(str(repo / "results" / MACHINE / "machine.json"), {"machine": MACHINE}, api_version=1)
    rng = np.random.default_rng(1)
    for i, commit in enumerate(commits):
        results = Results({"machine": MACHINE, "python": "3.12"}, {}, commit, 1_700_000_000_000 + i, "3.12", "virtualenv-py3.12", {})
        for name, seconds in ((JOIN, 2e-6 * (1.3 if i >= STEP else 1.0)), (PARSE, 5e-5)):
            value = seconds * rng.uniform(0.99, 1.01)
            samples = [value * rng.uniform(0.99, 1.01) for _ in range(10)]
            outcome = BenchmarkResult(result=[value], samples=[samples], number=[1000], errcode=0, stderr="", profile=None)
            results.add_result({"name": name, "version": "1", "params": []}, outcome, record_samples=False)
        results.save(str(repo / "results"))
    return repo, commits


def tracker(bin_dir, cwd, *argv):
    return subprocess.run([bin_dir / "kvcache-tracker", *argv], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_fresh_virtualenv_has_the_tracker_and_no_mlx(tracker_venv):
    python = tracker_venv / "python"
    assert subprocess.run([python, "-c", "import mlx"], capture_output=True).returncode != 0
    assert subprocess.run([python, "-c", "import kvcache"], capture_output=True).returncode != 0
    for command in ("p95", "gate", "confirm", "power", "vendor-html"):
        done = tracker(tracker_venv, ROOT, command, "--help")
        assert done.returncode == 0 and command in done.stdout, done.stderr


def test_p95_flags_the_other_projects_step_as_a_median(tracker_venv, other_project):
    repo, commits = other_project
    done = tracker(tracker_venv, repo, "p95", "--no-html", "--json", "p95.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((repo / "p95.json").read_text())
    [flag] = report["flags"]
    assert flag["benchmark"] == JOIN and flag["commit"] == commits[STEP]
    assert flag["statistic"] == "median" and flag["change"] == pytest.approx(0.3, abs=0.05)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("- regression:")]
    assert "median 2.00 µs -> 2.5" in line and "p95" not in line  # its own unit, and called a median


def test_gate_fails_across_the_step_and_passes_elsewhere(tracker_venv, other_project):
    repo, commits = other_project
    across = tracker(tracker_venv, repo, "gate", commits[STEP - 1], commits[STEP])
    assert across.returncode == 1, across.stdout + across.stderr
    assert JOIN in across.stdout and "1 median regression(s)" in across.stdout
    before = tracker(tracker_venv, repo, "gate", commits[1], commits[2])
    assert before.returncode == 0, before.stdout + before.stderr
