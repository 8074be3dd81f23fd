"""``kvcache-bench power``: how often each detector finds a planted regression at the right
commit, and how often it cries wolf, on series replayed from real recorded noise
(``kvbench.tracker.replay``).

Detectors, each given the per-commit p95 (and median where there are samples) of a series:

- ``kvbench``: the alert rule (``detect.shifts_up``) on the p95 and the median series;
- ``kvbench+confirm``: the same, and each new flag is re-measured as the main job does
  (``kvbench.tracker.confirm``: the flagged commit and the one before it measured again; it
  stands when the re-measured change is at least half the flagged one);
- ``previous rule``: the rule this tracker had before (a step confirmed by one later commit,
  each of the two above every one of the two commits before, and significant by a bootstrap
  of the samples);
- ``asv``: asv's own step detection (``asv.step_detect``, what ``asv publish`` flags) on the
  median series, as asv tracks medians;
- ``otava``: Apache Otava's ``compute_change_points`` on the p95 series, a flag for each change
  point up by more than the threshold (no alert rule), where Otava is importable.

Each is run as CI runs it, again after every commit (``ci``), and once on the whole history
(``full``). A flag is *right* when it names a planted step's first commit, +-1 (creep: any
commit of the creep, raised within ``CREEP_DEADLINE`` commits of its start). Reported per
scenario: recall, precision, false flags per 100 commits, and the delay (commits from the
change to the run that first raised the right flag).
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass

import numpy as np
from asv.step_detect import detect_regressions, detect_steps

from ..errors import UserError
from . import confirm, detect, replay, stats
from .gate import compare
from .read import Measurement
from .render import write_table

THRESHOLD = detect.THRESHOLD
CREEP_DEADLINE = 10
FIRST_RUN = 5  # CI mode: the detector first runs when the series has this many commits
AA_COMPARISONS = 20
DEFAULT_NOISE = os.path.join("tests", "data", "noise-cpu.json")


def register(subparsers):
    parser = subparsers.add_parser("power", help="detection power on replayed real noise", description=__doc__)
    parser.add_argument(
        "--noise", help=f"recorded noise file (default {DEFAULT_NOISE}); with --record-from, the file to write (required)"
    )
    parser.add_argument("--seeds", type=int, default=50, help="replayed series per scenario and benchmark")
    parser.add_argument(
        "--baseline-seeds", type=int, default=20, help="of those, how many the other detectors replay (they are slower)"
    )
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--json", help="write every number to this JSON file")
    parser.add_argument("--mode", choices=["ci", "full"], default="ci")
    parser.add_argument(
        "--record-from", metavar="DIR", help="write --noise from the asv results files in DIR (scripts/record-noise.sh) and stop"
    )
    parser.add_argument("--force", action="store_true", help="with --record-from: overwrite --noise if it exists")
    parser.set_defaults(func=run)


def run(args):
    if args.record_from:
        return record(args)
    noise = args.noise or DEFAULT_NOISE
    if args.seeds < 1:
        raise UserError(f"--seeds must be a positive number of series, not {args.seeds}")
    try:
        meta, noises = replay.load_noise(noise)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"cannot read recorded noise {noise}: {error}")
    aa = aa_gate_failures(noises)
    write_aa_table(aa, print)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rows = measure_power(noises, available_detectors(), seeds, args.mode, args.baseline_seeds)
    print()
    write_power_table(rows, print)
    print(f"\n{meta.get('machine', '?')}: {len(noises)} benchmarks x {args.seeds} seeds, mode {args.mode}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"meta": meta, "mode": args.mode, "aa_gate": aa, "rows": rows}, out, indent=1)
    return 0


def record(args):
    """``--record-from``: write ``--noise``, which must be named, and must be new unless ``--force``
    (the default noise file is the committed recording the tests replay)."""
    if not args.noise:
        raise UserError(
            f"--record-from needs --noise FILE, the file to write: the default {DEFAULT_NOISE} is the committed recording"
        )
    if os.path.exists(args.noise) and not args.force:
        raise UserError(f"--noise {args.noise} exists: name a new file, or pass --force to overwrite it")
    n_runs = replay.write_noise(args.record_from, args.noise)
    print(f"wrote {args.noise}: {n_runs} runs")
    return 0


def aa_gate_failures(noises, comparisons=AA_COMPARISONS, seed=0):
    """The gate on A/A pairs of recorded asv runs of the one commit: BASE one run, HEAD
    another (each with its rounds), every benchmark compared as the gate compares them.
    ``{"history": {...}, "rounds only": {...}}``, each ``{benchmark: failures, "any": comparisons
    with at least one failure}``: with the spread of the other recorded runs as the branch's
    history, and with no history at all."""
    n_runs = min(len(_runs_of(noise)) for noise in noises)
    rng = np.random.default_rng(seed)
    found = {"history": {"any": 0}, "rounds only": {"any": 0}}
    for _ in range(comparisons):
        order = rng.permutation(n_runs)
        failed = {"history": False, "rounds only": False}
        for noise in noises:
            runs = _runs_of(noise)
            base, head = _measurement(noise, runs[order[0]]), _measurement(noise, runs[order[1]])
            others = [stats.p95(np.concatenate(runs[i])) for i in order[2:]]
            sigma = stats.run_to_run_sigma(others)
            for mode, history in (("history", sigma), ("rounds only", None)):
                failure = compare(base, head, THRESHOLD, history_sigma=history).regression
                found[mode][noise.benchmark] = found[mode].get(noise.benchmark, 0) + failure
                failed[mode] |= failure
        for mode in found:
            found[mode]["any"] += failed[mode]
    return found


def _runs_of(noise):
    """The recorded asv runs of a benchmark, each a list of its rounds (arrays of samples)."""
    if not noise.has_samples:
        return [[np.array([value])] for value in noise.values]
    per_run = max(1, len(noise.runs) // noise.n_runs)
    return [[np.asarray(r) for r in noise.runs[k : k + per_run]] for k in range(0, len(noise.runs), per_run)]


def _measurement(noise, rounds):
    if not noise.has_samples:
        return Measurement(noise.benchmark, "replay", "replay", "c", 0, "track", (), float(rounds[0][0]), 1)
    samples = tuple(np.concatenate(rounds).tolist())
    return Measurement(noise.benchmark, "replay", "replay", "c", 0, "samples", samples, float(np.median(samples)), 1, len(rounds))


def write_aa_table(aa, write_line):
    rows = [[b, f"{aa['history'][b]} / {AA_COMPARISONS}", f"{aa['rounds only'][b]} / {AA_COMPARISONS}"] for b in aa["history"]]
    write_table(["A/A gate: failures of", "with history", "rounds only"], rows, write_line)


# --- per-commit statistics ---------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """A replayed series: each commit's samples (or track value), p95 and median."""

    samples: list
    p95: np.ndarray
    median: np.ndarray | None  # None for a track benchmark

    @classmethod
    def of(cls, measurements, has_samples):
        p95 = np.array([stats.p95(m) for m in measurements])
        median = np.array([np.median(m) for m in measurements]) if has_samples else None
        return cls(measurements, p95, median)


# --- detectors: the first t commits of a series -> [(flagged index, change)] -----------------


def kvbench_flags(m, t):
    series = [("p95", m.p95[:t])] + ([("median", m.median[:t])] if m.median is not None else [])
    found = {}
    for statistic, values in series:
        for shift in detect.shifts_up(values):
            if shift.confirmed and shift.index not in found:
                found[shift.index] = (shift.change, statistic)
    return sorted((index, change, statistic) for index, (change, statistic) in found.items())


def previous_rule_flags(m, t, window=2):
    """The previous rule: ``window`` commits from ``j`` on all > (1 + threshold) x each of
    the ``window`` before, and (with samples) bootstrap-significant for each against ``j-1``."""
    values, flags = m.p95[:t], []
    for j in range(1, t - window + 1):
        before, after = values[max(0, j - window) : j], values[j : j + window]
        if min(after) <= (1 + THRESHOLD) * max(before):
            continue
        if m.median is not None and not all(
            _percentile_bootstrap_low(m.samples[j - 1], m.samples[i]) > 1 + THRESHOLD for i in range(j, j + window)
        ):
            continue
        flags.append((j, values[j] / values[j - 1] - 1, "p95"))
    return flags


def _percentile_bootstrap_low(base, head, resamples=200, level=0.90):
    """The previous rule's test: the lower end of the percentile-bootstrap interval of
    p95(head) / p95(base), resampling the samples of one measurement each."""
    rng = np.random.default_rng(0)
    base, head = np.asarray(base), np.asarray(head)
    ratios = np.quantile(rng.choice(head, (resamples, head.size)), 0.95, axis=1) / np.quantile(
        rng.choice(base, (resamples, base.size)), 0.95, axis=1
    )
    return float(np.quantile(ratios, (1 - level) / 2))


def asv_flags(m, t):
    values = m.median[:t] if m.median is not None else m.p95[:t]
    _, _, jumps = detect_regressions(detect_steps(list(values)), THRESHOLD)
    return [(after, 0.0, "median") for _, after, _, _ in jumps or ()]


def otava_flags(m, t):
    from otava.analysis import compute_change_points

    points, _ = compute_change_points([float(v) for v in m.p95[:t]])
    return [
        (int(p.index), p.stats.forward_rel_change(), "p95")
        for p in points
        if p.stats.forward_rel_change() > THRESHOLD
    ]


@dataclass(frozen=True)
class Detector:
    name: str
    flags: object  # (Measured, t) -> [(index, change, statistic)] in the first t commits
    confirm: bool = False  # re-measure each new flag before reporting it


def available_detectors():
    found = [
        Detector("kvbench", kvbench_flags),
        Detector("kvbench+confirm", kvbench_flags, confirm=True),
        Detector("previous rule", previous_rule_flags),
        Detector("asv", asv_flags),
    ]
    try:
        import otava.analysis  # noqa: F401
    except ImportError:
        return found
    return found + [Detector("otava", otava_flags)]


# --- replay and scoring ------------------------------------------------------------------


def raised_flags(detector, replayer, measured, mode, rng, found=None):
    """``{index: time}``: each commit flagged, and the series length at which it first was.
    ``found`` memoizes the detectors' flags per (function, t) for one series."""
    n = len(measured.samples)
    found = {} if found is None else found
    raised, dismissed = {}, set()
    for t in range(FIRST_RUN, n + 1) if mode == "ci" else [n]:
        if (detector.flags, t) not in found:
            found[detector.flags, t] = detector.flags(measured, t)
        for index, change, statistic in found[detector.flags, t]:
            if index in raised or index in dismissed:
                continue
            if detector.confirm and not remeasured(replayer, index, change, statistic, rng):
                dismissed.add(index)
                continue
            raised[index] = t
    return raised


def remeasured(replayer, index, change, statistic, rng):
    """The main job's re-measurement (``confirm.agrees``) of commits ``index - 1`` and ``index``."""
    before = replayer.measure(index - 1, rng, again=True)
    after = replayer.measure(index, rng, again=True)
    return confirm.agrees(change, statistic if replayer.noise.has_samples else "p95", before, after)[0]


def score(scenario, raised):
    """``(found, delay, n_false, near_slow)`` for one replayed series."""
    truth, right, wrong = scenario.truth(), [], []
    for index, time in sorted(raised.items()):
        if scenario.kind == "creep":
            ok = replay.START - 1 <= index <= replay.START + replay.CREEP_COMMITS and time <= replay.START + CREEP_DEADLINE
        else:
            ok = any(abs(index - t) <= 1 for t in truth)
        (right if ok else wrong).append(time if ok else index)
    near_slow = scenario.kind == "slow" and any(replay.START - 1 <= i <= replay.START + 2 for i in raised)
    delay = min(right) - 1 - replay.START if right else None
    return bool(right), delay, len(_groups(wrong)), near_slow


def _groups(indices):
    """Flags on adjacent commits count once (one alert that moved by a commit)."""
    groups = []
    for i in indices:
        if groups and i - groups[-1][-1] <= 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def measure_power(noises, detectors, seeds, mode, baseline_seeds=None, scenarios=replay.SCENARIOS):
    """One row per (scenario, detector): numbers over every benchmark and seed; detectors
    other than this tracker's run on the first ``baseline_seeds`` seeds only (they are slow)."""
    rows = []
    for scenario in scenarios:
        per_detector = {d.name: [] for d in detectors}
        for noise in noises:
            replayer = replay.Replayer(noise, scenario)
            for k, seed in enumerate(seeds):
                measured = Measured.of(replayer.series(np.random.default_rng(seed)), noise.has_samples)
                found = {}
                for d in detectors:
                    if not d.name.startswith("kvbench") and baseline_seeds is not None and k >= baseline_seeds:
                        continue
                    raised = raised_flags(d, replayer, measured, mode, np.random.default_rng(seed + 10**6), found)
                    per_detector[d.name].append((noise.benchmark, score(scenario, raised)))
        for name, results in per_detector.items():
            rows.append(_row(scenario, name, results))
    return rows


def _row(scenario, detector, results):
    scores = [s for _, s in results]
    found = [s[0] for s in scores]
    delays = [s[1] for s in scores if s[1] is not None]
    n_false = sum(s[2] for s in scores)
    n_true = sum(found)
    return {
        "scenario": scenario.name,
        "detector": detector,
        "series": len(scores),
        "recall": sum(found) / len(scores) if scenario.truth() else None,
        "precision": n_true / (n_true + n_false) if n_true + n_false else None,
        "false_per_100_commits": 100 * n_false / (len(scores) * replay.LENGTH),
        "flagged_near_slow": sum(s[3] for s in scores) / len(scores) if scenario.kind == "slow" else None,
        "median_delay": float(np.median(delays)) if delays else None,
        "recall_by_benchmark": {
            b: float(np.mean([s[0] for name, s in results if name == b])) for b in sorted({b for b, _ in results})
        },
    }


def write_power_table(rows, write_line):
    def pct(x):
        return "-" if x is None else f"{100 * x:.0f}%"

    table = [
        [
            r["scenario"],
            r["detector"],
            pct(r["recall"]) if r["recall"] is not None else pct(r["flagged_near_slow"]) + " flagged",
            pct(r["precision"]),
            f"{r['false_per_100_commits']:.2f}",
            "-" if r["median_delay"] is None else f"{r['median_delay']:.0f}",
        ]
        for r in rows
    ]
    write_table(["scenario", "detector", "recall", "precision", "false / 100 commits", "delay"], table, write_line)


if __name__ == "__main__":  # python -m kvbench.tracker.power, e.g. with Otava's interpreter
    parser = argparse.ArgumentParser(prog="power")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["power", *sys.argv[1:]])
    sys.exit(args.func(args))
