"""Results are never lost: the tracker only reads them, and the main job only ever adds them.

- ``kvcache-tracker p95`` and ``gate`` leave the results directory exactly as it was (every
  file's bytes and modification time), whatever is wrong in it; an unreadable results file is
  named and skipped, the others are still read.
- ``scripts/main-job.sh``, killed while asv measures its second commit, leaves the first
  commit's results, which still publish; run again, it measures only what is missing and
  never rewrites what is there. This runs the real script and real asv (virtualenv, wheel
  built from git) over a tiny project with the project's own asv.conf.json; only the making
  of the tracker's virtualenv (scripts/venv.sh) is replaced, by this interpreter's.
- Bad input that tests/test_tracker_cli.py does not cover: one line, exit code 2.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from asv.results import Results
from asv.runner import BenchmarkResult
from asv.util import write_json

from kvtracker import cli

from conftest import asv_repo, git

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MACHINE = "safety-box"
ENV = "virtualenv-py3.11"
RESTORE = "bench_reconstruct.Reconstruct8k.time_reconstruct_8k"
ZERO_COPY = f"{RESTORE}('zero_copy')"


def snapshot(path):
    """Every entry under ``path``: its kind, content digest (or link target) and modification time."""
    entries = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            info = os.lstat(full)
            if os.path.islink(full):
                content = os.readlink(full)
            elif os.path.isdir(full):
                content = "dir"
            else:
                with open(full, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
            entries[os.path.relpath(full, path)] = (content, info.st_mtime_ns)
    return entries


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- the tracker only reads ------------------------------------------------------------------


def save_results(results_dir, commit, date, zero_copy_samples, machine=MACHINE):
    """One results file, as ``asv run --record-samples`` writes it."""
    results = Results({"machine": machine, "python": "3.11"}, {}, commit, date, "3.11", ENV, {})
    outcome = BenchmarkResult(
        result=[float(np.median(zero_copy_samples))],
        samples=[zero_copy_samples],
        number=[1],
        errcode=0,
        stderr="",
        profile=None,
    )
    info = {"name": RESTORE, "version": "1", "params": [["'zero_copy'"]]}
    results.add_result(info, outcome, record_samples=True)
    results.save(str(results_dir))
    return results_dir / machine / f"{commit[:8]}-{ENV}.json"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """``(repo, commits, files)``: 5 commits on main, results for each; +10 ms per call from commit 3."""
    repo = asv_repo(
        tmp_path / "repo",
        '{"version": 1, "repo": ".", "branches": ["main"], "results_dir": "results", "html_dir": "html"}\n',
    )
    commits, files = [], []
    rng = np.random.default_rng(0)
    for i in range(5):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"commit {i}")
        commits.append(git(repo, "rev-parse", "HEAD"))
        samples = list(0.001 + rng.exponential(0.0001, 60) + (0.010 if i >= 3 else 0))
        files.append(save_results(repo / "results", commits[i], 1_700_000_000_000 + i, samples))
    write_json(str(repo / "results" / MACHINE / "machine.json"), {"machine": MACHINE}, api_version=1)
    monkeypatch.chdir(repo)
    return repo, commits, files


def damage(path, how):
    """Spoil a results file in one of the ways a disk, a killed writer or a person does."""
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:150])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "binary":
        path.write_bytes(b"\xff\xfe\x00\x01garbage")
    elif how == "not an object":
        path.write_text("[1, 2, 3]")
    elif how == "newer asv":
        path.write_text(json.dumps(dict(json.loads(path.read_text()), version=99)))
    elif how == "missing key":
        data = json.loads(path.read_text())
        del data["commit_hash"]
        path.write_text(json.dumps(data))
    elif how == "null results":
        data = json.loads(path.read_text())
        data["results"] = {name: None for name in data["results"]}
        path.write_text(json.dumps(data))
    elif how == "dangling link":
        path.unlink()
        path.symlink_to(path.parent / "gone.json")
    elif how == "a directory":
        path.unlink()
        path.mkdir()
    else:
        raise AssertionError(how)


DAMAGE = [
    "truncated",
    "empty",
    "binary",
    "not an object",
    "newer asv",
    "missing key",
    "null results",
    "dangling link",
    "a directory",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_results_file_is_named_skipped_and_left_as_is(project, capsys, tmp_path, how):
    repo, commits, files = project
    damage(files[1], how)
    before = snapshot(repo / "results")
    out_json = tmp_path / "p95.json"
    code, out, err = run_cli(capsys, "p95", "--json", str(out_json))
    assert code == 0, err
    assert f"skipping unreadable results file {files[1]}" in err
    [series] = json.loads(out_json.read_text())["series"]
    assert [p["commit"] for p in series["points"]] == [commits[i] for i in (0, 2, 3, 4)]
    code, out, err = run_cli(capsys, "gate", commits[2], commits[3])
    assert code == 1 and "**regression**" in out  # the gate reads the good files around it
    assert f"skipping unreadable results file {files[1]}" in err
    code, out, err = run_cli(capsys, "gate", commits[0], commits[1])
    assert code == 2 and f"no results for HEAD {commits[1]}" in err
    assert snapshot(repo / "results") == before


def test_no_readable_file_at_all_is_one_line_and_touches_nothing(project, capsys):
    repo, commits, files = project
    for path, how in zip(files, DAMAGE):
        damage(path, how)
    before = snapshot(repo / "results")
    for argv in (["p95"], ["gate", commits[0], commits[1]]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2
        assert err.splitlines()[-1] == (
            f"kvcache-tracker {argv[0]}: no readable asv results in {repo / 'results'}: "
            "run `asv run --record-samples` first, or pass --results DIR"
        )
    assert snapshot(repo / "results") == before


def test_the_verdicts_file_in_the_results_root_is_read_as_no_results(project, capsys, tmp_path):
    """kvcache-tracker confirm keeps its verdicts in RESULTS_DIR/confirmations.json: neither the
    tracker nor asv reads it as results (asv reads only directories holding a machine.json)."""
    from asv.results import iter_results

    from kvtracker.read import read_measurements

    repo, commits, _ = project
    results = repo / "results"
    measured = read_measurements(str(results), print)
    by_asv = sorted(r.commit_hash for r in iter_results(str(results)))
    out_json = tmp_path / "p95.json"
    assert run_cli(capsys, "p95", "--no-html", "--json", str(out_json))[0] == 0
    series = json.loads(out_json.read_text())["series"]
    (results / "confirmations.json").write_text(json.dumps({"verdicts": [
        {"benchmark": ZERO_COPY, "machine": MACHINE, "env": ENV, "commit": commits[3], "confirmed": False}]}))
    warnings = []
    assert read_measurements(str(results), warnings.append) == measured and warnings == []
    assert sorted(r.commit_hash for r in iter_results(str(results))) == by_asv
    code, _, err = run_cli(capsys, "p95", "--no-html", "--json", str(out_json))
    assert code == 0 and "skipping" not in err, err
    assert json.loads(out_json.read_text())["series"] == series  # the same points; the verdict dismissed the flag
    assert [f["commit"] for f in json.loads(out_json.read_text())["dismissed"]] == [commits[3]]


@pytest.mark.parametrize("option", ["--json", "--html"])
def test_p95_refuses_to_write_into_the_results(project, capsys, option):
    repo, _, files = project
    before = snapshot(repo / "results")
    target = files[0] if option == "--json" else files[0].parent
    code, _, err = run_cli(capsys, "p95", option, str(target))
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{option} {target} is inside the results directory" in err
    assert snapshot(repo / "results") == before


# -- bad input (cases tests/test_tracker_cli.py leaves out) ----------------------------------

BAD_INPUT = {
    # name: (argv, words the one line must hold); {tmp} is a scratch directory, {c0}.. commits
    "results dir is a file": (["p95", "--results", "asv.conf.json"], ["asv.conf.json", "does not exist"]),
    "results dir without results": (["p95", "--results", "{tmp}/machine-only"], ["no readable asv results"]),
    "config is a directory": (["p95", "--config", "{tmp}"], ["cannot read {tmp}"]),
    "budgets file missing": (["p95", "--budgets", "{tmp}/none.json"], ["cannot read budgets file"]),
    "budgets file is a directory": (["p95", "--budgets", "{tmp}"], ["cannot read budgets file"]),
    "budgets not an object": (["p95", "--budgets", "{tmp}/list.json"], ["malformed budgets file"]),
    "budget as a string": (["p95", "--budgets", "{tmp}/string.json"], ["budget of x", "'5'"]),
    "budget NaN": (["p95", "--budgets", "{tmp}/nan.json"], ["budget of x", "nan"]),
    "budgets not UTF-8": (["p95", "--budgets", "{tmp}/binary.json"], ["cannot read budgets file"]),
    "negative noise floor": (["p95", "--min-rise-ms", "-1"], ["--min-rise-ms"]),
    "threshold NaN": (["gate", "{c0}", "{c1}", "--threshold", "nan"], ["--threshold"]),
    "--json in a missing directory": (["p95", "--json", "{tmp}/no/dir/p95.json"], ["cannot write --json"]),
    "--html is a file": (["p95", "--html", "asv.conf.json"], ["cannot write the p95 page"]),
    "commit that looks like an option": (["gate", "--", "--all", "{c1}"], ["unknown commit --all"]),
    "machine without that commit": (
        ["gate", "{c2}", "{c3}", "--machine", "other-box"],
        ["no results for BASE"],
    ),
    "several machines": (["gate", "{c0}", "{c1}"], ["several machines", "--machine"]),
    "no benchmark in common": (
        ["gate", "{c3}", "{c4}", "--machine", "other-box"],
        ["share no p95 benchmark"],
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_gives_one_line_and_exit_2(project, capsys, tmp_path, case):
    repo, commits, files = project
    scratch = tmp_path / "scratch"
    (scratch / "machine-only" / MACHINE).mkdir(parents=True)
    shutil.copy(files[0].parent / "machine.json", scratch / "machine-only" / MACHINE)
    (scratch / "list.json").write_text("[]")
    (scratch / "string.json").write_text('{"budgets_ms": {"x": "5"}}')
    (scratch / "nan.json").write_text('{"budgets_ms": {"x": NaN}}')
    (scratch / "binary.json").write_bytes(b"\xff\xfe\x00")
    # another machine: both ends of (c0, c1), and c3, c4 with a benchmark of its own
    for i in (0, 1):
        save_results(repo / "results", commits[i], 0, [0.001] * 20, machine="other-box")
    other = Results({"machine": "other-box"}, {}, commits[3], 0, "3.11", ENV, {})
    outcome = BenchmarkResult(
        result=[0.5], samples=[[0.5] * 5], number=[1], errcode=0, stderr="", profile=None
    )
    other.add_result(
        {"name": "bench_pool.PoolOps.time_allocate_free", "version": "1", "params": []},
        outcome,
        record_samples=True,
    )
    other.save(str(repo / "results"))
    save_results(repo / "results", commits[4], 0, [0.001] * 20, machine="other-box")

    argv, words = BAD_INPUT[case]
    values = {"tmp": str(scratch), **{f"c{i}": c for i, c in enumerate(commits)}}
    before = snapshot(repo / "results")
    code, out, err = run_cli(capsys, *(arg.format(**values) for arg in argv))
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kvcache-tracker {argv[0]}: "), err
    for word in words:
        assert word.format(**values) in lines[0], lines[0]
    assert snapshot(repo / "results") == before


def test_no_config_and_no_results_option_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "p95")
    assert code == 2
    assert (
        err == "kvcache-tracker p95: no asv.conf.json here: run from the project root or pass --results DIR\n"
    )


# -- the main job only adds results ----------------------------------------------------------

TINY_BENCHMARK = '''"""A benchmark of the tiny project: one call per sample."""
import tinyproj


class Tiny:
    number = 1
    repeat = (10, 10, 10.0)  # 10 samples in each of asv's 2 rounds
    warmup_time = 0

    def time_work(self):
        tinyproj.work()
'''
TINY_PYPROJECT = """[build-system]
requires = ["setuptools>=61", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "tinyproj"
version = "0.1"
"""
VENV_STAND_IN = """#!/usr/bin/env bash
# Test stand-in for scripts/venv.sh: the tracker's virtualenv is the one running the tests.
echo "{python}"
"""
WORK = "def work():\n    return sum(range(1000))\n"
# The commit whose benchmark the first run is killed in: work() waits while SENTINEL exists.
WORK_BLOCKING = WORK + (
    "\n\nimport os as _os, time as _time\n"
    "while _os.path.exists({sentinel!r}):  # the test removes it after killing the job\n"
    "    _time.sleep(0.05)\n"
)


def tiny_project(repo, sentinel):
    """Three commits of a tiny package benchmarked with the project's own asv.conf.json and
    main-job.sh; ``[c0, c1, c2]``, oldest first. Importing c1's package blocks while ``sentinel`` exists
    (c2 takes that back: the job measures c2 first, asv discovers the benchmarks there)."""
    (repo / "tinyproj").mkdir(parents=True)
    (repo / "benchmarks").mkdir()
    (repo / "scripts").mkdir()
    for name in ("asv.conf.json", "scripts/main-job.sh", "scripts/asv-common.sh", "scripts/publish.sh"):
        shutil.copy(os.path.join(ROOT, name), repo / name)
    # No flag: a flag's re-measurement appends samples to other commits' files (its job, tested in
    # test_ci_rehearsal.py), and noise on a loaded machine could raise one between these equal
    # commits; these tests check that files survive kills and errors, byte for byte.
    config, thresholds = (repo / "asv.conf.json").read_text(), '"regressions_thresholds": {'
    assert config.count(thresholds) == 1
    (repo / "asv.conf.json").write_text(config.replace(thresholds, thresholds + '".*": 100.0,'))
    (repo / "scripts" / "venv.sh").write_text(VENV_STAND_IN.format(python=sys.executable))
    (repo / ".gitignore").write_text("/.asv/\n")
    (repo / "pyproject.toml").write_text(TINY_PYPROJECT)
    (repo / "benchmarks" / "__init__.py").write_text("")
    (repo / "benchmarks" / "bench_tiny.py").write_text(TINY_BENCHMARK)
    work = repo / "tinyproj" / "__init__.py"
    git(repo, "init", "-q", "-b", "main")
    commits = []
    for message, text in [
        ("base", WORK),
        ("blocks while the sentinel exists", WORK_BLOCKING.format(sentinel=str(sentinel))),
        ("back to base", WORK),
    ]:
        work.write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", message)
        commits.append(git(repo, "rev-parse", "HEAD"))
    return commits


@pytest.fixture
def main_job(tmp_path):
    """``start(repo)``: scripts/main-job.sh over the last 3 commits, in a process group of its own,
    logging to ``tmp_path/home/main-job.log``. At the end, jobs still running are killed and
    ``tmp_path/sentinel`` is removed (a benchmark process waiting on it finishes)."""
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), N="3", ASV_MACHINE=MACHINE)
    real_home = os.path.expanduser("~")  # pip's cache and configuration stay where they are
    env.setdefault("XDG_CACHE_HOME", os.path.join(real_home, ".cache"))
    env.setdefault("XDG_CONFIG_HOME", os.path.join(real_home, ".config"))
    started = []

    def start(repo):
        with open(home / "main-job.log", "a") as log:  # the job writes to its own copy of the handle
            started.append(
                subprocess.Popen(
                    ["bash", "scripts/main-job.sh"],
                    cwd=repo,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return started[-1]

    yield start
    for job in started:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    (tmp_path / "sentinel").unlink(missing_ok=True)


def results_of(repo, commit):
    machine_dir = repo / ".asv" / "results" / MACHINE
    return sorted(machine_dir.glob(f"{commit[:8]}-*.json")) if machine_dir.is_dir() else []


def test_main_job_killed_midway_keeps_what_it_measured_and_resumes(tmp_path, capsys, main_job):
    repo, sentinel, log = tmp_path / "tiny", tmp_path / "sentinel", tmp_path / "home" / "main-job.log"
    sentinel.touch()
    c0, c1, c2 = tiny_project(repo, sentinel)

    # 1. Killed (SIGKILL to the whole job) once asv has moved on to c1, which cannot finish
    #    while the sentinel exists. asv interleaves the rounds across the commits: c0 has
    #    its first round measured and saved, c2 nothing yet.
    job = main_job(repo)
    deadline = time.monotonic() + 300
    while f"For kvcache commit {c1[:8]}" not in log.read_text() and job.poll() is None:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    assert job.poll() is None, log.read_text()  # still running: waiting in c1
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    sentinel.unlink()  # a benchmark process that outlived the kill finishes
    [partial] = results_of(repo, c0)
    assert results_of(repo, c1) == [] and results_of(repo, c2) == [], log.read_text()
    partial_bytes = partial.read_bytes()
    before = snapshot(repo / ".asv" / "results")

    # 2. What it kept publishes: asv's dashboard and the p95 page.
    done = subprocess.run(
        [sys.executable, "-m", "asv", "publish"], cwd=repo, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    code, out, err = run_cli(capsys, "p95", "--config", str(repo / "asv.conf.json"))
    assert code == 0, err
    assert "bench_tiny.Tiny.time_work" in out and (repo / ".asv" / "html" / "p95.html").exists()

    # 3. Run again: c0's half-measured file is kept aside, byte for byte, and every commit is
    #    measured in full; nothing else that was there is gone or changed.
    assert main_job(repo).wait(timeout=300) == 0, log.read_text()
    [aside] = partial.parent.glob(f"{partial.name}.interrupted-*")
    assert aside.read_bytes() == partial_bytes and "killed midway" in log.read_text()
    before.pop(os.path.relpath(partial, repo / ".asv" / "results"))
    after = snapshot(repo / ".asv" / "results")
    assert {path: after.get(path, (None,))[0] for path in before} == {p: e[0] for p, e in before.items()}
    kept = results_of(repo, c2)[0]
    before = snapshot(repo / ".asv" / "results")
    [c0_file] = results_of(repo, c0)
    assert len(results_of(repo, c1)) == 1
    assert_series(repo, [c0, c1, c2])

    # 4. A kill in the middle of asv's writing (it writes in place) leaves a truncated file:
    #    the next run keeps it aside, measures that commit again and touches nothing else.
    truncated = c0_file.read_text()[:100]
    c0_file.write_text(truncated)
    before = snapshot(repo / ".asv" / "results")
    assert main_job(repo).wait(timeout=300) == 0, log.read_text()
    after = snapshot(repo / ".asv" / "results")
    c0_key = os.path.relpath(c0_file, repo / ".asv" / "results")
    assert after[c0_key] != before.pop(c0_key)  # measured again
    [aside] = c0_file.parent.glob(f"{c0_file.name}.unreadable-*")
    assert (
        aside.read_text() == truncated and f"kept as .asv/results/{MACHINE}/{aside.name}" in log.read_text()
    )
    assert_kept(before, after, kept)
    assert_series(repo, [c0, c1, c2])


def assert_kept(before, after, kept):
    """Nothing in ``before`` is gone or changed; the results file ``kept`` not even rewritten.
    (asv rewrites its own benchmarks.json and machine.json, with the same content, every run.)"""
    assert {path: after.get(path, (None,))[0] for path in before} == {p: e[0] for p, e in before.items()}
    key = os.path.join(MACHINE, kept.name)
    assert after[key] == before[key]  # same bytes, same modification time


def assert_series(repo, commits):
    """main-job.sh's p95.json has one sampled point per commit, in branch order."""
    [series] = json.loads((repo / ".asv" / "p95.json").read_text())["series"]
    assert [p["commit"] for p in series["points"]] == commits
    assert all(p["source"] == "samples" and p["n_samples"] == 20 for p in series["points"])  # 2 rounds of 10


def test_main_job_fails_on_a_suite_that_does_not_import_and_keeps_the_results(tmp_path, main_job):
    """asv exits 1 when it cannot discover the benchmarks: the job says so and exits 3, not 0
    as for "nothing to run"; what earlier runs measured is untouched."""
    repo, log = tmp_path / "tiny", tmp_path / "home" / "main-job.log"
    tiny_project(repo, tmp_path / "sentinel")  # no sentinel file: nothing blocks
    assert main_job(repo).wait(timeout=300) == 0, log.read_text()
    before = snapshot(repo / ".asv" / "results")
    (repo / "benchmarks" / "bench_tiny.py").write_text("raise ImportError('a broken suite')\n")
    git(repo, "commit", "-qam", "a suite that does not import")
    assert main_job(repo).wait(timeout=300) == 3, log.read_text()
    assert "main-job: asv run exited 1" in log.read_text() and "nothing to run" not in log.read_text()
    after = snapshot(repo / ".asv" / "results")
    assert {path: after.get(path, (None,))[0] for path in before} == {p: e[0] for p, e in before.items()}
