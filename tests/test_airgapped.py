"""The air-gapped recipe on this CPU (docs/runner.md, "An air-gapped or pre-built benchmark machine").

A temporary repository holds the project's files with a tiny benchmark suite of its own (one
``time_`` benchmark with raw samples, one ``track_`` benchmark that reads a marker from the
installed ``kvcache``) and two commits of main; the second sets the marker. Then, as on the GPU
machine:

- ``scripts/device/stage-commits.sh 2`` builds both commits' wheels and bundles main's history;
- ``scripts/device/measure-commits.sh`` measures both commits (and two noise runs of the newest)
  with this interpreter as asv's existing environment, under machine ``gpu-sim``, with pip cut
  off from every index (no config, an index and proxies that refuse connections);
- ``scripts/device/merge-results.sh`` merges the tarball into a results tree that already holds
  machine ``vm``'s results, publishes, and ``kvcache-tracker p95 --json`` lists both machines.

The marker proves that each commit's own wheel was measured (this interpreter has the
checkout's kvcache installed too, without the marker). The tracker's virtualenv
(scripts/venv.sh) is this interpreter.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
from packaging.requirements import Requirement

from conftest import git
from test_tracker_e2e import project_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MACHINE, OTHER = "gpu-sim", "vm"
BENCHMARK = '''"""The test's suite: raw samples of one call each, and the installed kvcache's marker."""
import kvcache


class Marker:
    number = 1
    rounds = 1
    repeat = (20, 20, 10.0)
    warmup_time = 0

    def time_sum(self):
        sum(range(1000))

    def track_marker(self):
        return getattr(kvcache, "AIRGAP_MARKER", 0)
'''
VENV_STAND_IN = '#!/usr/bin/env bash\necho "{python}"\n'
OFFLINE = {  # pip reads no config file, and every index or proxy it could try refuses
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
}


def run(repo, env, *command):
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """``(repo, [c0, c1], tarball, env)``: both commits measured and packed as on the GPU machine."""
    base = tmp_path_factory.mktemp("airgap")
    repo = base / "repo"
    for name in project_files():
        if not name.startswith("benchmarks/"):
            os.makedirs(repo / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), repo / name)
    (repo / "benchmarks").mkdir()
    (repo / "benchmarks" / "__init__.py").write_text("")
    (repo / "benchmarks" / "bench_marker.py").write_text(BENCHMARK)
    (repo / "scripts" / "venv.sh").write_text(VENV_STAND_IN.format(python=sys.executable))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    with open(repo / "kvcache" / "__init__.py", "a", encoding="utf-8") as f:
        f.write("\nAIRGAP_MARKER = 1\n")
    git(repo, "commit", "-q", "-am", "marker")
    commits = git(repo, "rev-list", "--reverse", "main").split()

    home = base / "home"  # asv's machine file
    home.mkdir()
    env = dict(os.environ, HOME=str(home), STAGE_WHEELS="0", PYTHON=sys.executable)
    env.setdefault("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    run(repo, env, "bash", "scripts/device/stage-commits.sh", "2")
    measure = dict(
        env, **OFFLINE, MACHINE=MACHINE, MEASURE="both", NOISE_RUNS="2", BENCH="bench_marker",
        NOISE_BENCH="time_sum", OUT=str(base / "out"),
    )
    run(repo, measure, "bash", "scripts/device/measure-commits.sh")
    return repo, commits, base / "out" / f"{MACHINE}-results.tar.gz", env


def results_of(folder):
    """``{commit: results dict}`` of the asv results files in ``folder``."""
    found = {}
    for name in os.listdir(folder):
        if name.endswith(".json") and name not in ("machine.json", "benchmarks.json"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                data = json.load(f)
            found[data["commit_hash"]] = data
    return found


def value(data, column, benchmark):
    return data["results"][benchmark][data["result_columns"].index(column)]


def tree(folder):
    """``{relative path: bytes}`` of every file under ``folder``."""
    files = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


def plant_other_machine(repo, packed):
    """Machine ``vm``'s results of both commits (the packed ones, filed under ``vm``)."""
    folder = repo / ".asv" / "results" / OTHER
    folder.mkdir(parents=True)
    (folder / "machine.json").write_text(json.dumps({"machine": OTHER, "version": 1}))
    for commit, data in results_of(packed / "results" / MACHINE).items():
        data = dict(data, params=dict(data["params"], machine=OTHER))
        (folder / f"{commit[:8]}-existing.json").write_text(json.dumps(data))
    return tree(repo / ".asv" / "results" / OTHER)


def test_each_commit_is_measured_from_its_own_wheel_with_raw_samples(measured, tmp_path):
    _, commits, tarball, _ = measured
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path, filter="data")
    results = results_of(tmp_path / "results" / MACHINE)
    assert sorted(results) == sorted(commits)
    assert [value(results[c], "result", "bench_marker.Marker.track_marker") for c in commits] == [[0], [1]]
    for data in results.values():
        assert data["params"]["machine"] == MACHINE
        [samples] = value(data, "samples", "bench_marker.Marker.time_sum")
        assert len(samples) == 20
    machine = json.loads((tmp_path / "results" / MACHINE / "machine.json").read_text())
    assert machine["machine"] == MACHINE and machine["arch"] and machine["cpu"] and machine["num_cpu"]
    noise = tmp_path / "noise" / commits[1]
    assert sorted(os.listdir(noise)) == ["benchmarks.json", "run-1.json", "run-2.json"]
    for run_file in ("run-1.json", "run-2.json"):
        data = json.loads((noise / run_file).read_text())
        assert data["commit_hash"] == commits[1]
        assert len(value(data, "samples", "bench_marker.Marker.time_sum")[0]) == 20


def test_merge_adds_the_machine_and_leaves_the_other_untouched(measured, tmp_path):
    repo, commits, tarball, env = measured
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path, filter="data")
    other = plant_other_machine(repo, tmp_path)
    run(repo, env, "bash", "scripts/device/merge-results.sh", str(tarball))
    assert tree(repo / ".asv" / "results" / OTHER) == other
    merged = results_of(repo / ".asv" / "results" / MACHINE)
    assert sorted(merged) == sorted(commits)
    assert sorted(os.listdir(repo / ".asv" / "noise" / MACHINE / commits[1])) == [
        "benchmarks.json", "run-1.json", "run-2.json",
    ]
    p95 = json.loads((repo / ".asv" / "p95.json").read_text())
    series = {(s["benchmark"], s["machine"]) for s in p95["series"]}
    assert {("bench_marker.Marker.time_sum", MACHINE), ("bench_marker.Marker.time_sum", OTHER)} <= series
    published = json.loads((repo / ".asv" / "html" / "index.json").read_text())
    assert sorted(published["params"]["machine"]) == sorted([MACHINE, OTHER])
    gate = subprocess.run(
        [sys.executable, "-m", "kvtracker.cli", "gate", commits[0], commits[1], "--machine", MACHINE],
        cwd=repo, env=env, capture_output=True, text=True,
    )
    assert gate.returncode in (0, 1) and MACHINE in gate.stdout, gate.stderr

    # Staging again for this machine leaves out what it measured: here, everything.
    restage = subprocess.run(
        ["bash", "scripts/device/stage-commits.sh", "2"], cwd=repo, capture_output=True, text=True,
        env=dict(env, STAGED=".airgap-again", SKIP_MEASURED_ON=MACHINE),
    )
    assert restage.returncode == 2 and f"has results of {MACHINE} already: nothing to stage" in restage.stderr

    # Merging the same tarball again adds nothing; a file here with other contents stops it all.
    again = run(repo, env, sys.executable, "scripts/device/merge_results.py", str(tarball), ".asv/results", ".asv/noise")
    assert "0 files added" in again.stdout
    changed = next((repo / ".asv" / "results" / MACHINE).glob(f"{commits[0][:8]}-*.json"))
    changed.write_text(changed.read_text().replace('"version": 2', '"version":  2'))
    (repo / ".asv" / "noise" / MACHINE / commits[1] / "run-2.json").unlink()
    refused = subprocess.run(
        ["bash", "scripts/device/merge-results.sh", str(tarball)], cwd=repo, env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "already here with other contents, nothing was merged" in refused.stderr and changed.name in refused.stderr
    assert not (repo / ".asv" / "noise" / MACHINE / commits[1] / "run-2.json").exists()
    assert tree(repo / ".asv" / "results" / OTHER) == other


def test_a_tarball_with_a_path_outside_its_folders_is_refused(measured, tmp_path):
    repo, _, _, env = measured
    bad = tmp_path / "bad.tar.gz"
    (tmp_path / "x.json").write_text("{}")
    with tarfile.open(bad, "w:gz") as archive:
        archive.add(tmp_path / "x.json", arcname="results/../../x.json")
    refused = subprocess.run(
        [sys.executable, "scripts/device/merge_results.py", str(bad), ".asv/results", ".asv/noise"],
        cwd=repo, env=env, capture_output=True, text=True,
    )
    assert refused.returncode == 2 and "which measure-commits.sh does not write" in refused.stderr


@pytest.mark.parametrize("second_name", ["results/gpu-sim/b.json", "./results/gpu-sim//b.json"])
def test_two_entries_for_one_file_are_refused_before_anything_is_written(tmp_path, second_name):
    tarball = tmp_path / "dup.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, text in [("results/gpu-sim/a.json", "{}"), ("results/gpu-sim/b.json", "{}"), (second_name, '{"x": 1}')]:
            (tmp_path / "entry.json").write_text(text)
            archive.add(tmp_path / "entry.json", arcname=name)
    refused = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts/device/merge_results.py"), str(tarball), "results", "noise"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "holds two entries for results/gpu-sim/b.json: not merged" in refused.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "noise").exists()  # all or nothing


def requirements(wheel, extras):
    """Names (with extras) that ``wheel`` requires on Linux with ``extras`` asked for."""
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    found = set()
    for line in lines:
        if line.startswith("Requires-Dist: "):
            req = Requirement(line[len("Requires-Dist: "):])
            for extra in ("", *extras):
                env = {"sys_platform": "linux", "platform_system": "Linux", "extra": extra}
                if req.marker is None or req.marker.evaluate(env):
                    found.add((req.name, tuple(sorted(req.extras))))
    return found


def test_the_cuda13_extra_asks_for_mlx_cuda_alone_and_the_cpu_paths_for_mlx_cpu(measured):
    repo, commits, _, _ = measured
    [wheel] = (repo / ".airgap" / "commits" / commits[1]).glob("*.whl")
    cuda = requirements(wheel, ["cuda13"])
    assert ("mlx", ("cuda13",)) in cuda
    assert not any("cpu" in extras for name, extras in cuda if name == "mlx"), cuda
    for extra in ("cpu", "test", "bench"):
        assert ("mlx", ("cpu",)) in requirements(wheel, [extra]), extra
