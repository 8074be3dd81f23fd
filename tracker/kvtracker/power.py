"""``kvcache-tracker power``: how often each detector finds a planted regression at the right
commit, and how often it cries wolf, on series replayed from real recorded noise
(``kvtracker.replay``).

Detectors, each given the per-commit p95 (and median where there are samples) of a series:

- ``kvbench``: the alert rule (``detect.shifts_up``) on the p95 and the median series;
- ``kvbench+confirm``: the same, and each new flag (and each level far beyond the noise) is
  re-measured as the main job does (``kvtracker.confirm``: the last commit at the reference
  level and every candidate measured again; it stands when one of them shows at least half
  the flagged change, and names the first that does);
- ``asv``: asv's own step detection (``asv.step_detect``, what ``asv publish`` flags) on the
  median series, as asv tracks medians;
- ``otava``: Apache Otava's ``compute_change_points`` on the p95 series, a flag for each change
  point up by more than the threshold (no alert rule), where Otava is importable.

Each is run as CI runs it, again after every commit (``ci``), and once on the whole history
(``full``). A flag is *right* when it names a planted step's first commit, +-1 (creep: any
commit of the creep, raised within ``CREEP_DEADLINE`` commits of its start); every other flag
is false, a second one for the same planted change included. Reported per scenario: recall,
the share named at exactly the right commit, precision, false flags per 100 commits, the
delay (commits from the change to the run that first raised the right flag; median), and the
share of series whose right flag the first run that measured the change raised (delay 0).
"""

import argparse
import functools
import json
import os
import sys
from dataclasses import dataclass

import numpy as np
from asv.step_detect import detect_regressions, detect_steps

from .errors import UserError
from . import confirm, detect, options, project, replay, stats
from .gate import compare
from .read import Measurement
from .render import write_table

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
        "--baseline-seeds", type=int, default=20, help="of those, how many the other detectors replay (they are slower; 0: none)"
    )
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--json", help="write every number to this JSON file")
    parser.add_argument("--mode", choices=["ci", "full"], default="ci")
    options.add_threshold(parser, "relative change that counts")
    options.add_config(parser)
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
    if args.baseline_seeds < 0:
        raise UserError(f"--baseline-seeds must be 0 (this tracker's detectors alone) or more, not {args.baseline_seeds}")
    try:
        meta, noises = replay.load_noise(noise)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"cannot read recorded noise {noise}: {error}")
    proj = project.load_project(args.config)
    threshold_for = functools.partial(proj.threshold_for, given=args.threshold)
    aa = aa_gate_failures(noises, threshold_for)
    write_aa_table(aa, print)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rows = measure_power(noises, available_detectors(), seeds, args.mode, args.baseline_seeds, threshold_for=threshold_for)
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


def aa_gate_failures(noises, threshold_for=lambda benchmark: detect.THRESHOLD, comparisons=AA_COMPARISONS, seed=0):
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
            bound = stats.neighbour_ratio_bound(others)
            for mode, history in (("history", bound), ("rounds only", None)):
                failure = compare(base, head, threshold_for(noise.benchmark), history_bound=history).regression
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
    """A replayed series: each commit's rounds (tuples of samples, or one track value), its
    pooled samples' p95 and median, and the spread of each statistic over its rounds."""

    rounds: list
    p95: np.ndarray
    median: np.ndarray | None  # None for a track benchmark
    spreads: dict  # {statistic: [detect.round_spread per commit]}
    threshold: float = detect.THRESHOLD  # the benchmark's

    @classmethod
    def of(cls, measurements, has_samples, threshold=detect.THRESHOLD):
        pooled = [np.concatenate(rounds) for rounds in measurements]
        p95 = np.array([stats.p95(m) for m in pooled])
        median = np.array([np.median(m) for m in pooled]) if has_samples else None
        named = ("p95", "median") if has_samples else ("p95",)
        spreads = {s: [detect.round_spread(r, s) for r in measurements] for s in named}
        return cls(measurements, p95, median, spreads, threshold)

    def values(self, t):
        """``{statistic: values of the first t commits}``."""
        found = {"p95": self.p95[:t]}
        if self.median is not None:
            found["median"] = self.median[:t]
        return found


@dataclass(frozen=True)
class Found:
    """A detector's flag in the first t commits of a series."""

    index: int
    moves: tuple  # ((statistic, change), ...): what moved, by how much
    candidates: tuple = ()  # indices that may be the first commit of the change (default: index)
    pending: bool = False  # far beyond the noise but not confirmed: a flag only once re-measured
    before: int | None = None  # the commit a re-measurement compares with (default: the one before)

    @property
    def suspects(self):
        return self.candidates or (self.index,)


# --- detectors: the first t commits of a series -> [Found] -----------------------------------


def kvbench_flags(m, t):
    """The alert rule on the p95 and median series, one ``Found`` per change (``detect.changes``):
    confirmed changes, and pending ones far beyond the noise."""
    spreads = {s: found[:t] for s, found in m.spreads.items()}
    return [
        Found(c.index, tuple((mv.statistic, mv.change) for mv in c.moves), c.candidates, not c.confirmed, c.before)
        for c in detect.changes(m.values(t), m.threshold, spreads_by_statistic=spreads)
        if c.confirmed or c.far
    ]


def asv_flags(m, t):
    values = m.median[:t] if m.median is not None else m.p95[:t]
    _, _, jumps = detect_regressions(detect_steps(list(values)), m.threshold)
    return [Found(after, (("median", 0.0),)) for _, after, _, _ in jumps or ()]


def otava_flags(m, t):
    from otava.analysis import compute_change_points

    points, _ = compute_change_points([float(v) for v in m.p95[:t]])
    return [
        Found(int(p.index), (("p95", p.stats.forward_rel_change()),))
        for p in points
        if p.stats.forward_rel_change() > m.threshold
    ]


@dataclass(frozen=True)
class Detector:
    name: str
    flags: object  # (Measured, t) -> [Found] in the first t commits
    confirm: bool = False  # re-measure each new flag before reporting it, and name its first slow commit


def available_detectors():
    found = [
        Detector("kvbench", kvbench_flags),
        Detector("kvbench+confirm", kvbench_flags, confirm=True),
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
    A flag is an alert already decided, as the main job matches it to its verdict
    (``confirm.verdict_for``), when its candidates were all re-measured by a dismissal, or it
    lies within ``detect.CONFIRM`` commits of a raised one. ``found`` memoizes the detectors'
    flags per (function, t) for one series."""
    n = len(measured.rounds)
    found = {} if found is None else found
    raised, dismissed = {}, []  # dismissed: the suspects of every alert re-measured away
    for t in range(FIRST_RUN, n + 1) if mode == "ci" else [n]:
        if (detector.flags, t) not in found:
            found[detector.flags, t] = detector.flags(measured, t)
        for flag in found[detector.flags, t]:
            if flag.pending and not detector.confirm:
                continue
            if any(abs(flag.index - i) <= detect.CONFIRM for i in raised) or any(set(flag.suspects) <= d for d in dismissed):
                continue
            named = remeasured_culprit(replayer, flag, rng) if detector.confirm else flag.index
            if named is None:
                dismissed.append(set(flag.suspects))
            else:
                raised[named] = t
    return raised


def remeasured_culprit(replayer, flag, rng):
    """The main job's re-measurement (``confirm.name_culprit``): the last commit at the
    reference level and every suspect measured again; the first suspect that shows at least half the
    flagged change, or None (dismissed)."""
    before = replayer.measure(flag.suspects[0] - 1 if flag.before is None else flag.before, rng, again=True)
    suspects = [replayer.measure(i, rng, again=True) for i in flag.suspects]
    moves = flag.moves if replayer.noise.has_samples else (("p95", max(c for _, c in flag.moves)),)
    named = confirm.name_culprit(moves, before, suspects)
    return None if named is None else flag.suspects[named]


def score(scenario, raised):
    """``(found, exact, delay, n_false, near_slow)`` for one replayed series. The first flag
    that names the step's first commit +-1 is right (``exact`` when it names that commit); every
    other flag is a false one, a second flag for the same planted change included."""
    truth, right, n_false = scenario.truth(), None, 0
    for index, time in sorted(raised.items(), key=lambda item: (item[1], item[0])):
        if scenario.kind == "creep":
            ok = replay.START - 1 <= index <= replay.START + replay.CREEP_COMMITS and time <= replay.START + CREEP_DEADLINE
        else:
            ok = any(abs(index - t) <= 1 for t in truth)
        if ok and right is None:
            right = (index, time)
        else:
            n_false += 1
    near_slow = scenario.kind == "slow" and any(replay.START - 1 <= i <= replay.START + 2 for i in raised)
    exact = right is not None and (scenario.kind == "creep" or right[0] in truth)
    delay = right[1] - 1 - replay.START if right else None
    return right is not None, exact, delay, n_false, near_slow


def measure_power(noises, detectors, seeds, mode, baseline_seeds=None, scenarios=replay.SCENARIOS, threshold_for=None):
    """One row per (scenario, detector): numbers over every benchmark and seed; detectors
    other than this tracker's run on the first ``baseline_seeds`` seeds only (they are slow; 0:
    none, and no row).
    ``threshold_for(benchmark)``: each benchmark's threshold (default 0.10 for all)."""
    rows = []
    for scenario in scenarios:
        per_detector = {d.name: [] for d in detectors}
        for noise in noises:
            replayer = replay.Replayer(noise, scenario)
            for k, seed in enumerate(seeds):
                threshold = threshold_for(noise.benchmark) if threshold_for else detect.THRESHOLD
                measured = Measured.of(replayer.series(np.random.default_rng(seed)), noise.has_samples, threshold)
                found = {}
                for d in detectors:
                    if not d.name.startswith("kvbench") and baseline_seeds is not None and k >= baseline_seeds:
                        continue
                    raised = raised_flags(d, replayer, measured, mode, np.random.default_rng(seed + 10**6), found)
                    per_detector[d.name].append((noise.benchmark, score(scenario, raised)))
        rows += [_row(scenario, name, results) for name, results in per_detector.items() if results]
    return rows


def _row(scenario, detector, results):
    scores = [s for _, s in results]
    found = [s[0] for s in scores]
    delays = [s[2] for s in scores if s[2] is not None]
    n_false = sum(s[3] for s in scores)
    n_true = sum(found)
    return {
        "scenario": scenario.name,
        "detector": detector,
        "series": len(scores),
        "recall": sum(found) / len(scores) if scenario.truth() else None,
        "exact": sum(s[1] for s in scores) / len(scores) if scenario.truth() else None,
        "precision": n_true / (n_true + n_false) if n_true + n_false else None,
        "false_per_100_commits": 100 * n_false / (len(scores) * replay.LENGTH),
        "flagged_near_slow": sum(s[4] for s in scores) / len(scores) if scenario.kind == "slow" else None,
        "median_delay": float(np.median(delays)) if delays else None,
        "first_run": sum(1 for s in scores if s[2] is not None and s[2] <= 0) / len(scores) if scenario.truth() else None,
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
            pct(r.get("exact")),
            pct(r["precision"]),
            f"{r['false_per_100_commits']:.2f}",
            "-" if r["median_delay"] is None else f"{r['median_delay']:.0f}",
            pct(r.get("first_run")),
        ]
        for r in rows
    ]
    write_table(
        ["scenario", "detector", "recall (+-1)", "exact commit", "precision", "false / 100 commits", "delay", "first run"], table, write_line
    )


if __name__ == "__main__":  # python -m kvtracker.power, e.g. with Otava's interpreter
    parser = argparse.ArgumentParser(prog="power")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["power", *sys.argv[1:]])
    sys.exit(args.func(args))
