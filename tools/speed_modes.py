"""Why one benchmark process restores fast and the next one slow: conditions, interleaved.

    python tools/speed_modes.py [--conditions default,hashseed0,...] [--processes 20] [--calls 2000]
                                [--chunk 100] [--device default|cpu|gpu] [--jobs 1] [--budget-s S]
                                [--quick] --out DIR
    python tools/speed_modes.py --phases SECONDS [--phases-condition default] --out DIR
    python tools/speed_modes.py --list

Each process builds the Gemma 3 12B 8K workload cheaply (zeros, stored in a pool), then times
``calls`` zero-copy restores, each with a plain-Python *probe* (a dict of 300 ``(i, str(i))``
entries) timed just before it; one more probe closes the loop, so every restore has a probe on
each side. The probe does the same work in every process and every condition: when it slows
down, the machine slowed down, not the restore. Conditions change one thing each (``--list``)
and run **interleaved process by process** (A, B, C, A, B, C, ...), so a slow stretch of the
machine falls on every condition alike.

Per process (``processes.jsonl``; raw per-call times in ``calls.npz``): restore and probe
median and p95; the restore / probe ratio (each restore over the mean of its two probes),
median and p95; the share of calls in the *slow phase* (the probe's rolling median over
``2 * HALF_WINDOW + 1`` calls above ``SLOW_FACTOR`` x the run's fast probe level, the 2nd
percentile of that rolling median over all the run's processes); a chunk series (medians
per ``--chunk`` calls, with the CPU the process was on and, from ``/proc/stat``, how busy every
CPU was and the steal time), so flips inside a process are visible; context switches and the
CPU time of every other thread during the timed loop. ``summary.md`` / ``summary.json``: per
condition, the processes, the median of their medians, the share of processes fast by their
median (at most ``FAST_FACTOR`` x the run's fast restore level, the 10th percentile of all
process medians), and the spread between processes (CV of medians and p95s), raw and
probe-normalised.

``--phases SECONDS`` runs one process of one condition for that long and characterises the
phases: their levels, how long they last, how often they flip (``phases.json``, ``phases.md``).

With ``--jobs J`` > 1 the next J - 1 processes start (import MLX, build the workload) while one
is timed: they run on the CPUs other than the first two, and each process is timed alone, in
order, on its own CPU mask (for a GPU host where a process takes seconds to start). ``--quick``
is a short run meant for such a host: 20 processes of 6 conditions, 1000 calls, up to 12 jobs,
no new process after ``--budget-s`` (210 s).

Linux only (``prctl``, ``/proc``, ``setarch``, ``taskset``). A measurement tool, not part of
the installed package; it imports ``kvcache`` from this repository.
"""

import argparse
import collections
import ctypes
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTEXT = 8192
PRESET = "gemma3-12b"
WARMUP = 20
HALF_WINDOW = 25
SLOW_FACTOR = 1.4
FAST_FACTOR = 1.3
PR_SET_TIMERSLACK = 29
PR_SET_THP_DISABLE = 41


class UserError(Exception):
    """A mistake in the arguments: printed as one line."""


Condition = collections.namedtuple("Condition", "description env wrapper knobs calls probe_only",
                                   defaults=((), None, (), None, False))

CONDITIONS = {
    "default": Condition("nothing changed", {}),
    "hashseed0": Condition("PYTHONHASHSEED=0", {"PYTHONHASHSEED": "0"}),
    "setarch-R": Condition("no address-space randomisation (setarch ARCH -R)", {}, "setarch"),
    "setarch-R+hashseed0": Condition("setarch -R and PYTHONHASHSEED=0", {"PYTHONHASHSEED": "0"}, "setarch"),
    "taskset0": Condition("the whole process on one CPU (taskset -c FIRST)", {}, "taskset"),
    "thp-off": Condition("transparent huge pages off for the process (prctl PR_SET_THP_DISABLE before MLX)", {}, None, ("thp_off",)),
    "malloc-arena1": Condition("glibc malloc with one arena (MALLOC_ARENA_MAX=1)", {"MALLOC_ARENA_MAX": "1"}),
    "gc-off": Condition("Python's GC off during the timed loop", {}, None, ("gc_off",)),
    "mlx-cache0": Condition("MLX's buffer cache off (mx.set_cache_limit(0) before the workload)", {}, None, ("mlx_cache0",)),
    "timerslack1": Condition("timer slack 1 ns (prctl PR_SET_TIMERSLACK)", {}, None, ("timerslack1",)),
    "pin-main-thread": Condition("the main thread alone on the first CPU, MLX's threads free", {}, None, ("pin_main",)),
    "spin-other": Condition("the whole process on the first CPU, a busy-spinning process on the second", {}, None, ("spin_other",)),
    "short": Condition("a short process: 300 calls", {}, None, (), 300),
    "long": Condition("a long process: 6000 calls", {}, None, (), 6000),
    "probe-only": Condition("no MLX imported: the plain-Python probe alone", {}, None, (), None, True),
}
FULL = ["default", "hashseed0", "setarch-R", "setarch-R+hashseed0", "taskset0", "thp-off", "malloc-arena1",
        "gc-off", "mlx-cache0", "timerslack1", "pin-main-thread", "spin-other", "short", "long", "probe-only"]
QUICK = ["default", "hashseed0", "setarch-R", "thp-off", "gc-off", "probe-only"]


# ---------------------------------------------------------------------------------------------
# The child: one measured process.

def probe_work():
    """The plain-Python probe: the same work in every process (~40 us on the CPUs seen)."""
    d = {}
    for i in range(300):
        d[i] = (i, str(i))
    return len(d)


def child_main(spec):
    """Run one measured process as ``spec`` says; print ``ready``, wait for a line, print ``result``."""
    initial_mask = os.sched_getaffinity(0)
    if "thp_off" in spec["knobs"]:
        _prctl(PR_SET_THP_DISABLE, 1)
    if "timerslack1" in spec["knobs"]:
        _prctl(PR_SET_TIMERSLACK, 1)
    if spec["setup_cpus"]:
        os.sched_setaffinity(0, spec["setup_cpus"])  # threads made from here on inherit it
    started = time.perf_counter()
    restore, device, mlx_version = (None, None, None) if spec["probe_only"] else _workload(spec)
    setup_s = time.perf_counter() - started
    print("ready", flush=True)
    sys.stdin.readline()
    if spec["setup_cpus"]:
        _set_all_threads(initial_mask)
    spinner = _apply_pins(spec, initial_mask)
    try:
        result = _timed_loop(restore, spec)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    result.update(pid=os.getpid(), device=device, mlx=mlx_version, setup_s=round(setup_s, 3),
                  thp=_status_field("THP_enabled"), timerslack_ns=_read_int("/proc/self/timerslack_ns"),
                  affinity=sorted(os.sched_getaffinity(0)), hash_seed=os.environ.get("PYTHONHASHSEED"))
    print("result " + json.dumps(result), flush=True)


def _workload(spec):
    """Build the 8K workload with zeros; return a zero-argument restore, the device and MLX's version."""
    sys.path.insert(0, ROOT)
    import mlx.core as mx
    from kvcache import BlockPool, BlockPoolBatchEngine, ModelCacheSpec
    from kvcache.mlx_lm_caches import default_ring_index, make_cache_layer

    if spec["device"] == "gpu":
        if not mx.is_available(mx.gpu):
            sys.exit("speed_modes: MLX has no GPU here (mx.is_available(mx.gpu) is False): run with --device cpu")
        mx.set_default_device(mx.gpu)
    elif spec["device"] == "cpu":
        mx.set_default_device(mx.cpu)
    if "mlx_cache0" in spec["knobs"]:
        mx.set_cache_limit(0)
    model = ModelCacheSpec.from_preset(PRESET)
    engine = BlockPoolBatchEngine(BlockPool(model, total_blocks=2 * model.total_blocks_needed(CONTEXT)))
    cache = []
    for layer_id, layer in enumerate(model.layers):
        slots = model.tokens_held(layer_id, CONTEXT) if layer.is_sliding else -(-CONTEXT // 256) * 256
        k_shape, v_shape = model.kv_shape(slots)
        keys, values = mx.zeros(k_shape, model.dtype), mx.zeros(v_shape, model.dtype)
        ring_index = default_ring_index(layer, CONTEXT) if layer.is_sliding else None
        cache.append(make_cache_layer(layer, keys, values, CONTEXT, ring_index))
        mx.eval(keys, values)
    table = engine.store("speed-modes", cache)
    del cache
    gc.collect()
    mx.clear_cache()

    for _ in range(WARMUP):
        restored = engine.reconstruct(table)
        del restored
        probe_work()
    return (engine.reconstruct, table), str(mx.default_device()), getattr(mx, "__version__", None)


def _timed_loop(restore, spec):
    """Probe, restore, probe, ... ``spec['calls']`` times (or for ``spec['seconds']``); chunk snapshots between.
    ``restore`` is ``(engine.reconstruct, table)``, or None for the probe alone."""
    reconstruct, table = restore if restore else (None, None)
    calls, seconds, chunk = spec["calls"], spec["seconds"], spec["chunk"]
    pc = time.perf_counter
    restore_s, probe_s, probe_t, snapshots = [], [], [], []
    if "gc_off" in spec["knobs"]:
        gc.collect()
        gc.disable()
    usage0, threads0, load0 = _rusage(), _thread_cpu(), os.getloadavg()
    t0 = pc()
    end = t0 + seconds if seconds else None
    done = 0
    while (done < calls) if end is None else (pc() < end):
        snapshots.append(_snapshot(t0))
        for _ in range(chunk if end is not None else min(chunk, calls - done)):
            s = pc()
            probe_work()
            e = pc()
            probe_t.append(s - t0)
            probe_s.append(e - s)
            if reconstruct is not None:
                s = pc()
                cache = reconstruct(table)
                e = pc()
                del cache
                restore_s.append(e - s)
            done += 1
    s = pc()
    probe_work()
    e = pc()
    probe_t.append(s - t0)
    probe_s.append(e - s)
    snapshots.append(_snapshot(t0))
    usage1, threads1, load1 = _rusage(), _thread_cpu(), os.getloadavg()
    gc.enable()
    return {
        "restore_ms": [round(x * 1e3, 5) for x in restore_s],
        "probe_ms": [round(x * 1e3, 5) for x in probe_s],
        "probe_t_s": [round(x, 6) for x in probe_t],
        "snapshots": snapshots,
        "nvcsw": usage1[0] - usage0[0],
        "nivcsw": usage1[1] - usage0[1],
        "minflt": usage1[2] - usage0[2],
        "thread_cpu_ticks": {tid: threads1[tid] - threads0.get(tid, 0) for tid in threads1},
        "threads": len(threads1),
        "loadavg": [load0[0], load1[0]],
    }


def _apply_pins(spec, initial_mask):
    """The condition's CPU pins, applied once the workload is built; returns a spinner process or None."""
    if "pin_main" in spec["knobs"]:
        os.sched_setaffinity(0, {spec["cpu_a"]})  # pid 0 from a thread: that thread alone
    if "spin_other" in spec["knobs"]:
        _set_all_threads({spec["cpu_a"]})
        code = f"import os\nos.sched_setaffinity(0, {{{spec['cpu_b']}}})\nwhile True: pass\n"
        spinner = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.3)
        return spinner
    return None


def _set_all_threads(mask):
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), mask)
        except (ProcessLookupError, PermissionError):
            pass


def _prctl(option, value):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        sys.exit(f"speed_modes: prctl({option}, {value}) failed: {os.strerror(ctypes.get_errno())}")


def _snapshot(t0):
    """Time since the loop began, the CPU this thread is on, and ``/proc/stat``'s per-CPU jiffies."""
    with open("/proc/thread-self/stat") as f:
        cpu = int(f.read().rsplit(")", 1)[1].split()[36])
    with open("/proc/stat") as f:
        jiffies = {line.split()[0]: [int(x) for x in line.split()[1:9]] for line in f
                   if line.startswith("cpu") and line[3] != " "}
    return {"t": round(time.perf_counter() - t0, 6), "cpu": cpu, "jiffies": jiffies}


def _rusage():
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw, usage.ru_nivcsw, usage.ru_minflt


def _thread_cpu():
    """utime + stime in clock ticks of every thread of this process, by thread id."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[tid] = int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            pass
    return ticks


def _status_field(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return None


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read())
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Statistics: pure functions over per-call times.

def rolling_median(values, half_window=HALF_WINDOW):
    """The median of each value's window of ``2 * half_window + 1`` values (edges padded with
    the edge value); same length as ``values``; an empty input gives an empty array."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return values
    padded = np.pad(values, (half_window, half_window), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_window + 1)
    return np.median(windows, axis=1)


def fast_level(smoothed_probes):
    """A machine's fast probe level: the 2nd percentile of smoothed probe times (one array or
    several, pooled). None when there are none."""
    pooled = np.concatenate([np.asarray(s, dtype=float) for s in smoothed_probes]) if smoothed_probes else np.array([])
    return float(np.percentile(pooled, 2)) if pooled.size else None


def slow_mask(smoothed_probe, level, factor=SLOW_FACTOR):
    """True where the smoothed probe is above ``factor`` x ``level``: the machine's slow phase."""
    return np.asarray(smoothed_probe) > factor * level


def restore_ratios(restore_ms, probe_ms):
    """Each restore over the mean of the probes on either side of it (``probe_ms`` has one more
    value than ``restore_ms``): the restore in units of this machine's current speed."""
    restore, probe = np.asarray(restore_ms, dtype=float), np.asarray(probe_ms, dtype=float)
    assert probe.size == restore.size + 1, "a probe on each side of every restore (a bug otherwise)"
    return restore / ((probe[:-1] + probe[1:]) / 2)


def process_stats(record, probe_level):
    """One process's numbers from its per-call times; ``probe_level`` is the run's fast probe
    level. Restore fields are None for a probe-only process."""
    probe = np.asarray(record["probe_ms"], dtype=float)
    smoothed = rolling_median(probe)
    slow = slow_mask(smoothed, probe_level)
    stats = {
        "probe_median_us": float(np.median(probe)) * 1e3,
        "probe_p95_us": float(np.percentile(probe, 95)) * 1e3,
        "slow_share": float(slow.mean()),
        "restore_median_ms": None, "restore_p95_ms": None, "ratio_median": None, "ratio_p95": None,
    }
    if record["restore_ms"]:
        restore = np.asarray(record["restore_ms"], dtype=float)
        ratios = restore_ratios(restore, probe)
        stats.update(restore_median_ms=float(np.median(restore)), restore_p95_ms=float(np.percentile(restore, 95)),
                     ratio_median=float(np.median(ratios)), ratio_p95=float(np.percentile(ratios, 95)))
    return stats


def chunk_series(record):
    """Per snapshot-to-snapshot chunk: its start (s), restore and probe medians, the CPU the
    process was on, every CPU's busy share and the steal jiffies over the chunk."""
    snaps, t = record["snapshots"], np.asarray(record["probe_t_s"])
    rows = []
    for a, b in zip(snaps, snaps[1:]):
        index = np.nonzero((t >= a["t"]) & (t < b["t"]))[0]
        if index.size == 0:
            continue
        restore = [record["restore_ms"][i] for i in index if i < len(record["restore_ms"])]
        rows.append({
            "t": a["t"], "calls": int(index.size), "cpu": a["cpu"],
            "restore_ms": round(float(np.median(restore)), 4) if restore else None,
            "probe_us": round(float(np.median([record["probe_ms"][i] for i in index])) * 1e3, 2),
            "busy": {cpu: _busy_share(a["jiffies"][cpu], b["jiffies"][cpu]) for cpu in a["jiffies"]},
            "steal": {cpu: b["jiffies"][cpu][7] - a["jiffies"][cpu][7] for cpu in a["jiffies"]},
        })
    return rows


def _busy_share(before, after):
    """Share of a CPU's jiffies not idle or iowait between two ``/proc/stat`` rows (None if no tick passed)."""
    total = sum(after) - sum(before)
    idle = (after[3] + after[4]) - (before[3] + before[4])
    return round((total - idle) / total, 3) if total > 0 else None


def cv(values):
    """Standard deviation over mean (population), or None for fewer than 2 values."""
    values = [v for v in values if v is not None]
    return float(np.std(values) / np.mean(values)) if len(values) > 1 else None


def condition_summary(name, stats, fast_restore_level):
    """One condition's row: processes, medians, fast share, spread between processes."""
    medians = [s["restore_median_ms"] for s in stats if s["restore_median_ms"] is not None]
    return {
        "condition": name,
        "description": CONDITIONS[name].description if name in CONDITIONS else name,
        "processes": len(stats),
        "restore_median_ms": float(np.median(medians)) if medians else None,
        "restore_median_range_ms": [min(medians), max(medians)] if medians else None,
        "fast_by_median": (sum(m <= FAST_FACTOR * fast_restore_level for m in medians) / len(medians)
                           if medians and fast_restore_level else None),
        "cv_median_raw": cv(medians),
        "cv_p95_raw": cv([s["restore_p95_ms"] for s in stats]),
        "ratio_median": float(np.median([s["ratio_median"] for s in stats])) if medians else None,
        "cv_median_norm": cv([s["ratio_median"] for s in stats]),
        "cv_p95_norm": cv([s["ratio_p95"] for s in stats]),
        "probe_median_us": float(np.median([s["probe_median_us"] for s in stats])) if stats else None,
        "cv_probe_median": cv([s["probe_median_us"] for s in stats]),
        "slow_share_mean": float(np.mean([s["slow_share"] for s in stats])) if stats else None,
        "mostly_slow": sum(s["slow_share"] > 0.5 for s in stats) / len(stats) if stats else None,
        "nivcsw_total": sum(s["nivcsw"] for s in stats),
        "nvcsw_total": sum(s["nvcsw"] for s in stats),
    }


def summarize(records):
    """Per-process stats (added to each record as ``stats``) and one summary row per condition,
    in the order conditions first appear. Both fast levels are the run's: the probe's from
    every process's smoothed probe (so a condition that keeps the machine slow shows as slow),
    the restore's the 10th percentile of every process median."""
    by_condition = collections.OrderedDict()
    for record in records:
        by_condition.setdefault(record["condition"], []).append(record)
    level = fast_level([rolling_median(r["probe_ms"]) for r in records])
    for record in records:
        record["stats"] = dict(process_stats(record, level), probe_fast_level_us=level * 1e3,
                               nivcsw=record["nivcsw"], nvcsw=record["nvcsw"])
    medians = [r["stats"]["restore_median_ms"] for r in records if r["stats"]["restore_median_ms"] is not None]
    fast_restore = float(np.percentile(medians, 10)) if medians else None
    rows = [condition_summary(name, [r["stats"] for r in group], fast_restore) for name, group in by_condition.items()]
    return {"fast_restore_level_ms": fast_restore, "fast_probe_level_us": level * 1e3 if level else None, "fast_factor": FAST_FACTOR, "slow_factor": SLOW_FACTOR,
            "half_window": HALF_WINDOW, "conditions": rows}


def phases(times_s, slow):
    """Runs of equal phase: ``[{"slow", "start_s", "duration_s", "calls"}]``; ``times_s`` are
    the calls' start times (increasing), ``slow`` a boolean per call. A run lasts from its first
    call to the next run's first call (the last run: to its last call)."""
    times_s, slow = np.asarray(times_s, dtype=float), np.asarray(slow, dtype=bool)
    if times_s.size == 0:
        return []
    edges = np.concatenate([[0], np.nonzero(slow[1:] != slow[:-1])[0] + 1, [slow.size]])
    runs = []
    for a, b in zip(edges[:-1], edges[1:]):
        stop = times_s[b] if b < times_s.size else times_s[-1]
        runs.append({"slow": bool(slow[a]), "start_s": float(times_s[a]), "duration_s": float(stop - times_s[a]),
                     "calls": int(b - a)})
    return runs


def phase_summary(record):
    """A long process's phases: level of restore and probe in each, how long phases last, how
    often the machine flips."""
    probe = np.asarray(record["probe_ms"], dtype=float)
    smoothed = rolling_median(probe)
    level = fast_level([smoothed])
    slow = slow_mask(smoothed, level)
    runs = phases(record["probe_t_s"], slow)
    span = record["probe_t_s"][-1] - record["probe_t_s"][0]
    restore = np.asarray(record["restore_ms"], dtype=float)
    out = {"seconds": span, "calls": int(probe.size), "probe_fast_level_us": level * 1e3, "flips": len(runs) - 1,
           "flips_per_s": (len(runs) - 1) / span if span else None, "phases": {}}
    for state, name in ((False, "fast"), (True, "slow")):
        mask = slow[:-1] if restore.size else slow
        durations = [r["duration_s"] for r in runs if r["slow"] == state]
        out["phases"][name] = {
            "time_share": sum(durations) / span if span else None,
            "count": len(durations),
            "duration_median_s": float(np.median(durations)) if durations else None,
            "duration_p90_s": float(np.percentile(durations, 90)) if durations else None,
            "duration_max_s": max(durations) if durations else None,
            "probe_median_us": float(np.median(probe[slow == state])) * 1e3 if (slow == state).any() else None,
            "restore_median_ms": float(np.median(restore[mask == state])) if restore.size and (mask == state).any() else None,
            "restore_p95_ms": float(np.percentile(restore[mask == state], 95)) if restore.size and (mask == state).any() else None,
        }
    out["runs"] = runs
    return out


# ---------------------------------------------------------------------------------------------
# Rendering: take a sink.

def render_summary(summary, write_line):
    """The per-condition table, in markdown."""
    write_line(f"fast restore level {_num(summary['fast_restore_level_ms'], 3)} ms (10th percentile of process "
               f"medians); fast by median: <= {summary['fast_factor']} x it; slow phase: probe's rolling median "
               f"> {summary['slow_factor']} x the run's fast level, {_num(summary['fast_probe_level_us'], 1)} us")
    write_line("")
    write_line("| condition | processes | restore median of medians (range), ms | fast by median | CV medians raw / norm "
               "| CV p95 raw / norm | restore/probe median | probe median, us | slow-phase share of calls | procs mostly slow | invol. ctx switches |")
    write_line("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in summary["conditions"]:
        rng = row["restore_median_range_ms"]
        write_line(f"| {row['condition']} | {row['processes']} | {_num(row['restore_median_ms'], 3)}"
                   f"{f' ({rng[0]:.3f}-{rng[1]:.3f})' if rng else ''} | {_pct(row['fast_by_median'])} "
                   f"| {_pct(row['cv_median_raw'])} / {_pct(row['cv_median_norm'])} | {_pct(row['cv_p95_raw'])} / {_pct(row['cv_p95_norm'])} "
                   f"| {_num(row['ratio_median'], 2)} | {_num(row['probe_median_us'], 1)} | {_pct(row['slow_share_mean'])} "
                   f"| {_pct(row['mostly_slow'])} | {row['nivcsw_total']} |")


def render_phases(summary, write_line):
    """A long process's phases, in markdown."""
    write_line(f"{summary['seconds']:.1f} s, {summary['calls']} calls, {summary['flips']} flips "
               f"({_num(summary['flips_per_s'], 2)} a second); probe fast level {summary['probe_fast_level_us']:.1f} us")
    write_line("")
    write_line("| phase | share of time | phases | duration median / p90 / max, s | probe median, us | restore median / p95, ms |")
    write_line("|---|---|---|---|---|---|")
    for name, p in summary["phases"].items():
        write_line(f"| {name} | {_pct(p['time_share'])} | {p['count']} | {_num(p['duration_median_s'], 3)} / "
                   f"{_num(p['duration_p90_s'], 3)} / {_num(p['duration_max_s'], 3)} | {_num(p['probe_median_us'], 1)} "
                   f"| {_num(p['restore_median_ms'], 3)} / {_num(p['restore_p95_ms'], 3)} |")


def _num(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value):
    return "-" if value is None else f"{100 * value:.1f}%"


# ---------------------------------------------------------------------------------------------
# The parent: spawn, interleave, collect.

def child_command(name, spec):
    """The argv and environment that start one process of condition ``name``."""
    condition = CONDITIONS[name]
    wrapper = []
    if condition.wrapper == "setarch":
        wrapper = ["setarch", platform.machine(), "-R"]
    elif condition.wrapper == "taskset":
        wrapper = ["taskset", "-c", str(spec["cpu_a"])]
    env = dict(os.environ, PYTHONUNBUFFERED="1", **condition.env)
    return wrapper + [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)], env


def child_spec(name, args, cpus, setup_cpus, seconds=None):
    condition = CONDITIONS[name]
    return {"condition": name, "calls": condition.calls or args.calls, "seconds": seconds, "chunk": args.chunk,
            "device": args.device, "knobs": list(condition.knobs), "probe_only": condition.probe_only,
            "cpu_a": cpus[0], "cpu_b": cpus[1] if len(cpus) > 1 else cpus[0], "setup_cpus": setup_cpus}


class Child:
    """One started process of a condition: ``wait_ready``, then ``run`` (go, read the result)."""

    def __init__(self, name, round_index, spec):
        argv, env = child_command(name, spec)
        self.name, self.round, self.started = name, round_index, time.time()
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)

    def run(self):
        """The process's record, or ``{"error": ...}`` if it failed."""
        if self._line("ready") is None:
            return self._failed()
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = self._line("result ")
        self.proc.wait()
        if line is None or self.proc.returncode != 0:
            return self._failed()
        record = json.loads(line[len("result "):])
        record.update(condition=self.name, round=self.round)
        return record

    def _line(self, prefix):
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line.rstrip("\n")
        return None

    def _failed(self):
        self.proc.kill()
        self.proc.wait()
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").strip().splitlines()[-3:]
        return {"condition": self.name, "round": self.round, "error": f"exit {self.proc.returncode}: {' | '.join(tail)}"}


def run_conditions(args, names, log):
    """Every process of every condition, interleaved; returns the records in the order run."""
    cpus = sorted(os.sched_getaffinity(0))
    setup_cpus = None
    if args.jobs > 1:
        if len(cpus) < 4:
            raise UserError(f"--jobs {args.jobs} needs at least 4 CPUs (2 for the timed process, the rest to start others); this process may use {len(cpus)}")
        setup_cpus = cpus[2:]
    queue = [(r, name) for r in range(args.processes) for name in names]
    pending, records, started = collections.deque(), [], time.time()
    position = 0
    while position < len(queue) or pending:
        while len(pending) < args.jobs and position < len(queue) and time.time() - started < args.budget_s:
            r, name = queue[position]
            pending.append(Child(name, r, child_spec(name, args, cpus, setup_cpus)))
            position += 1
        if not pending:
            break
        record = pending.popleft().run()
        records.append(record)
        log(_progress(record, len(records), len(queue), time.time() - started))
    return records


def _progress(record, done, total, elapsed):
    head = f"[{done}/{total} {elapsed:.0f}s] {record['condition']} #{record['round']}"
    if "error" in record:
        return f"{head}: FAILED {record['error']}"
    restore = f"restore {np.median(record['restore_ms']):.3f} ms, " if record["restore_ms"] else ""
    return (f"{head}: {restore}probe {np.median(record['probe_ms']) * 1e3:.1f} us, "
            f"cpu {record['snapshots'][-1]['cpu']}, load {record['loadavg'][1]:.2f}")


def machine():
    """What the run was on: platform, CPUs, transparent huge pages, load."""
    def read(path):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None
    model = None
    for line in (read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"platform": platform.platform(), "cpu_model": model, "cpus": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)), "python": platform.python_version(),
            "thp": read("/sys/kernel/mm/transparent_hugepage/enabled"),
            "loadavg": os.getloadavg(), "utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_results(out, records, extra):
    """``processes.jsonl`` (stats and chunk series, no per-call times), ``calls.npz``, ``run.json``."""
    os.makedirs(out, exist_ok=True)
    arrays = {}
    with open(os.path.join(out, "processes.jsonl"), "w") as f:
        for i, record in enumerate(records):
            if "error" not in record:
                key = f"{i:04d}-{record['condition']}"
                arrays[key + "-restore_ms"] = np.asarray(record["restore_ms"], dtype=np.float32)
                arrays[key + "-probe_ms"] = np.asarray(record["probe_ms"], dtype=np.float32)
                arrays[key + "-probe_t_s"] = np.asarray(record["probe_t_s"], dtype=np.float64)
                record = {k: v for k, v in record.items() if k not in ("restore_ms", "probe_ms", "probe_t_s", "snapshots")} | {
                    "chunks": chunk_series(record), "calls_key": key}
            f.write(json.dumps(record) + "\n")
    np.savez_compressed(os.path.join(out, "calls.npz"), **arrays)
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump(extra, f, indent=1)


def write_rendered(out, stem, payload, render):
    with open(os.path.join(out, stem + ".json"), "w") as f:
        json.dump(payload, f, indent=1)
    lines = []
    render(payload, lines.append)
    with open(os.path.join(out, stem + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1].strip().split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conditions", help=f"comma-separated (default: all {len(FULL)}; --list says what each changes)")
    parser.add_argument("--processes", type=int, help="processes per condition (default 20)")
    parser.add_argument("--calls", type=int, help="timed restores per process (default 2000; 'short' and 'long' set their own)")
    parser.add_argument("--chunk", type=int, default=100, help="calls per chunk of the time series (default 100)")
    parser.add_argument("--device", choices=("default", "cpu", "gpu"), default="default", help="MLX device (default: MLX's)")
    parser.add_argument("--jobs", type=int, help="processes alive at once, only one timed (default 1)")
    parser.add_argument("--budget-s", type=float, help="start no process after this many seconds (default: none)")
    parser.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)}; 20 processes, 1000 calls, up to 12 jobs, 210 s budget")
    parser.add_argument("--phases", type=float, metavar="SECONDS", help="one long process instead: characterise its phases")
    parser.add_argument("--phases-condition", default="default", help="the condition of the --phases process")
    parser.add_argument("--out", help="folder for the results (created)")
    parser.add_argument("--list", action="store_true", help="list the conditions and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick_jobs = max(1, min(12, len(os.sched_getaffinity(0)) - 2)) if len(os.sched_getaffinity(0)) >= 8 else 1
    defaults = {"processes": 20, "calls": 1000 if args.quick else 2000, "jobs": quick_jobs if args.quick else 1,
                "budget_s": 210.0 if args.quick else float("inf")}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def checked_conditions(args):
    names = args.conditions.split(",") if args.conditions else (QUICK if args.quick else FULL)
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise UserError(f"unknown condition {', '.join(unknown)}: pick from {', '.join(FULL)} (--list)")
    for tool in {CONDITIONS[n].wrapper for n in names} - {None}:
        if shutil.which(tool) is None:
            raise UserError(f"condition needs '{tool}', which is not on PATH: leave those conditions out")
    if min(args.processes, args.calls, args.chunk, args.jobs) < 1:
        raise UserError("--processes, --calls, --chunk and --jobs must be at least 1")
    return names


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0
    if args.list:
        for name in FULL:
            print(f"{name:22} {CONDITIONS[name].description}")
        return 0
    if not args.out:
        raise UserError("--out DIR is required: the folder for the results")
    log = lambda line: print(line, file=sys.stderr, flush=True)
    extra = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv), "args": {k: v for k, v in vars(args).items() if k != "child"},
             "machine_start": machine()}
    if args.phases:
        if args.phases_condition not in CONDITIONS:
            raise UserError(f"unknown --phases-condition {args.phases_condition}: pick from {', '.join(FULL)}")
        args.jobs = 1
        cpus = sorted(os.sched_getaffinity(0))
        record = Child(args.phases_condition, 0, child_spec(args.phases_condition, args, cpus, None, seconds=args.phases)).run()
        if "error" in record:
            raise UserError(f"the --phases process failed: {record['error']}")
        summary = phase_summary(record)
        extra["machine_end"] = machine()
        write_results(args.out, [record], extra)
        write_rendered(args.out, "phases", summary, render_phases)
        return 0
    names = checked_conditions(args)
    log(f"{len(names)} conditions x {args.processes} processes, {args.calls} calls, jobs {args.jobs}, load {os.getloadavg()[0]:.2f}")
    records = run_conditions(args, names, log)
    ok = [r for r in records if "error" not in r]
    summary = summarize(ok)
    extra["machine_end"] = machine()
    extra["failed"] = [r for r in records if "error" in r]
    write_results(args.out, records, extra)
    write_rendered(args.out, "summary", summary, render_summary)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        sys.exit(f"speed_modes: {error}")
