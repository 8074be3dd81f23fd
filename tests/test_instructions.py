"""Instruction counting (benchmarks/instructions.py): the counters' C layouts, what a machine
without a counter reports, and callgrind's count of the real restore and re-park.

The layouts are checked against the kernel's and macOS's documented ABI on every machine (the
calls themselves only run where they exist). Where valgrind is installed, a child Python under
callgrind counts the real workload: the same code counted twice gives the same number, and a
planted +2% of host work in ``BlockPoolBatchEngine.reconstruct`` (a copy of kvcache with a
short Python loop added, first on the child's path) shows as a +2% step in the restore's count
and nowhere else. ~1 minute: three children, each ~20 s, most of it the uninstrumented startup.
"""

import ctypes
import json
import os
import re
import shutil
import sys

import pytest
from asv.results import Results
from asv.runner import BenchmarkResult
from asv.util import write_json

from kvtracker import cli
from kvtracker.read import carries_p95

from conftest import asv_repo, git

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # asv imports the suite as the package ``benchmarks``
from benchmarks import bench_instructions, instructions  # noqa: E402

ROUNDS = 10

# Appended to a copy of kvcache/engine.py: ~2% more instructions in every zero-copy restore.
PLANTED_LOOP = """
_planted_reconstruct = BlockPoolBatchEngine.reconstruct
def _reconstruct_with_a_loop(self, *args, **kwargs):
    for _ in range(PLANTED_ITERATIONS):
        pass
    return _planted_reconstruct(self, *args, **kwargs)
BlockPoolBatchEngine.reconstruct = _reconstruct_with_a_loop
"""
PLANTED_ITERATIONS = 150  # ~125 instructions an iteration in this VM's CPython 3.11: ~2% of a restore


# --- layouts -------------------------------------------------------------------------------
def test_perf_event_attr_matches_the_kernel_abi_sizes():
    # include/uapi/linux/perf_event.h: PERF_ATTR_SIZE_VER0..8 end after these fields
    ends = {"config1": 64, "config2": 72, "branch_sample_type": 80, "clockid": 96, "sample_regs_intr": 104,
            "reserved_2": 112, "reserved_3": 120, "sig_data": 128, "config3": 136}
    attr = instructions.PerfEventAttr
    for field, size in ends.items():
        descriptor = getattr(attr, field)
        assert descriptor.offset + descriptor.size == size, field
    assert ctypes.sizeof(attr) == instructions.PERF_ATTR_SIZE_VER8 == 136
    assert (attr.config.offset, attr.flags.offset, attr.wakeup_events.offset) == (8, 40, 48)


def test_the_instruction_counter_attr_counts_user_space_only_and_is_not_inherited():
    attr = instructions.instructions_attr()
    raw = bytes(attr)
    assert (attr.type, attr.config, attr.size) == (0, 1, 136)  # PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS
    flags = int.from_bytes(raw[40:48], "little")
    assert flags == (1 << 5) | (1 << 6)  # exclude_kernel, exclude_hv; disabled, inherit, exclude_user: 0


def test_rusage_info_v4_matches_macos_layout():
    # <sys/resource.h>: uint8_t ri_uuid[16], then 35 uint64_t; ri_instructions is the 30th
    info = instructions.RusageInfoV4
    assert ctypes.sizeof(info) == 16 + 35 * 8 == 296
    assert info.ri_user_time.offset == 16
    assert (info.ri_lifetime_max_phys_footprint.offset, info.ri_instructions.offset, info.ri_cycles.offset) == (
        240, 248, 256,
    )
    assert info.ri_runnable_time.offset == 288


# --- availability ------------------------------------------------------------------------------
def test_perf_counts_instructions_or_names_the_errno():
    try:
        fds = instructions.open_perf_counters()
    except instructions.Unavailable as why:  # this VM and the lent GPU host: no PMU (ENOENT)
        assert re.fullmatch(r"perf_event_open: E[A-Z]+ \(.+\)", str(why)), why
        with pytest.raises(instructions.Unavailable, match=r"^unavailable: perf_event_open: E[A-Z]+ \("):
            instructions.choose_counter([instructions.PerfCounter])
        return
    for fd in fds:
        os.close(fd)
    with instructions.perf_counters() as read:
        before = read()
        sum(range(100_000))
        assert read() - before > 100_000


def test_other_platforms_say_why_they_cannot_count():
    with pytest.raises(instructions.Unavailable, match="not Linux on x86_64 or arm64"):
        instructions.open_perf_counters(machine="riscv64")
    if sys.platform != "darwin":
        with pytest.raises(instructions.Unavailable, match=r"^unavailable: proc_pid_rusage: not macOS \(linux\)"):
            instructions.choose_counter([instructions.RusageCounter])


@pytest.mark.skipif(sys.platform != "linux", reason="the reasons below are Linux's")
def test_without_a_counter_the_benchmark_is_skipped_with_the_reasons(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "")  # no valgrind
    monkeypatch.setattr(instructions, "COUNTERS", (instructions.RusageCounter, instructions.CallgrindCounter))
    bench = bench_instructions.Instructions()
    counted = bench.setup_cache()
    reason = "unavailable: proc_pid_rusage: not macOS (linux); callgrind: valgrind is not on PATH"
    assert counted == {"unavailable": reason}
    with pytest.raises(NotImplementedError):
        bench.setup(counted)
    assert capsys.readouterr().err == f"instructions: {reason}\n"


def test_the_client_request_is_harmless_outside_valgrind():
    if instructions.platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("client requests are written for x86_64 only")
    assert instructions.ClientRequests().request(instructions.RUNNING_ON_VALGRIND) == 0


def test_the_tracker_reads_instruction_series():
    assert carries_p95("bench_instructions.Instructions.track_restore_instructions")
    assert carries_p95("bench_instructions.Instructions.track_store_instructions")
    assert not carries_p95("bench_tail.RestoreTail.track_std_over_mean")


# Counted by real asv (bench_instructions, callgrind) on a history of 7 commits, the 4th of
# which planted a short loop in every restore (docs/benchmarks.md, "Instruction counts").
RESTORE_COUNTS = [937848.75, 937514.8, 937830.0, 955627.4, 954835.6, 955248.5, 955508.25]
STORE_COUNTS = [2316779.9, 2316242.9, 2316742.9, 2317034.6, 2315683.65, 2316123.65, 2316610.35]
PLANTED = 3


def test_p95_sees_the_planted_step_in_the_instruction_series_at_a_one_percent_threshold(tmp_path, capsys, monkeypatch):
    repo = asv_repo(tmp_path / "repo", '{"version": 1, "repo": ".", "branches": ["main"], "results_dir": "results"}')
    results_dir = repo / "results"
    os.makedirs(results_dir / "vm")
    write_json(str(results_dir / "vm" / "machine.json"), {"machine": "vm"}, api_version=1)
    commits = []
    for i, counts in enumerate(zip(RESTORE_COUNTS, STORE_COUNTS)):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"commit {i}")
        commits.append(git(repo, "rev-parse", "HEAD"))
        results = Results({"machine": "vm", "python": "3.11"}, {}, commits[-1], 1_700_000_000_000 + i, "3.11", "venv", {})
        for label, count in zip(instructions.LABELS, counts):
            outcome = BenchmarkResult(result=[count], samples=[None], number=[None], errcode=0, stderr="", profile=None)
            name = f"bench_instructions.Instructions.track_{label}_instructions"
            results.add_result({"name": name, "version": "1", "params": []}, outcome, record_samples=True)
        results.save(str(results_dir))
    monkeypatch.chdir(repo)
    flagged = {}
    for threshold in ("0.10", "0.01"):
        report = tmp_path / f"p95-{threshold}.json"
        assert cli.main(["p95", "--threshold", threshold, "--json", str(report)]) == 0, capsys.readouterr().err
        flagged[threshold] = [(f["benchmark"], f["commit"]) for f in json.loads(report.read_text())["flags"]]
    assert flagged["0.10"] == []  # the default threshold is for times: a 2% step is under it
    assert flagged["0.01"] == [("bench_instructions.Instructions.track_restore_instructions", commits[PLANTED])]


# --- callgrind on the real workload ---------------------------------------------------------------
needs_valgrind = pytest.mark.skipif(
    shutil.which("valgrind") is None or instructions.platform.machine() not in ("x86_64", "AMD64"),
    reason="no valgrind on an x86_64 machine (apt-get install valgrind)",
)


def planted_kvcache(tmp_path):
    """A copy of the kvcache package whose restore runs ``PLANTED_LOOP`` first."""
    copy = tmp_path / "planted"
    shutil.copytree(os.path.join(ROOT, "kvcache"), copy / "kvcache")
    with open(copy / "kvcache" / "engine.py", "a", encoding="utf-8") as f:
        f.write(f"\nPLANTED_ITERATIONS = {PLANTED_ITERATIONS}\n" + PLANTED_LOOP)
    return str(copy)


@needs_valgrind
def test_callgrind_counts_are_repeatable_and_see_a_planted_two_percent(tmp_path):
    counts = [instructions.CallgrindCounter().count(ROUNDS) for _ in range(2)]
    planted = instructions.CallgrindCounter(env={"PYTHONPATH": planted_kvcache(tmp_path)}).count(ROUNDS)
    for label in instructions.LABELS:
        low, high = sorted(count[label] for count in counts)
        assert high / low - 1 < 0.005, (label, counts)  # the same commit, two processes
    assert 400_000 < counts[0]["restore"] < counts[0]["store"]
    restore_step = planted["restore"] / counts[0]["restore"] - 1
    assert 0.01 < restore_step < 0.03, (planted, counts)
    assert abs(planted["store"] / counts[0]["store"] - 1) < 0.005, (planted, counts)

