"""``kvcache-bench confirm``: re-measure each new flag before alerting, as the main job does.

A flag says that commit C starts a level more than the threshold above the one before. The
main job measures C and the commit before it (P) once more, in one asv run whose rounds
alternate between the two (``asv run --append-samples``: the new samples are added after the
ones each result had). The flag **stands** when the re-measurement shows at least half the
flagged change in the statistic that moved (p95, median, or either for both); otherwise it
is **dismissed** as noise: a slow-measured stretch, not the code.

1. ``confirm --plan PLAN --flags P95_JSON [--confirmations FILE]``: writes PLAN with the flags
   that have no verdict yet and each one's sample counts at P and C, and prints one line per
   flag, ``P C REGEX``, for the asv run (REGEX selects the benchmark's combination).
2. ``confirm --decide PLAN --confirmations FILE``: reads the samples added since the plan,
   and appends one verdict per flag to FILE (created if missing; verdicts are only added; the
   file is replaced whole, so a failure leaves it as it was).

``p95 --confirmations FILE`` then reports dismissed flags apart from the flags.
"""

import json
import os
import re

import numpy as np

from ..atomic import write_text_atomically
from ..errors import UserError
from . import project, stats
from .options import warn
from .read import read_measurements


FLAG_KEYS = ("benchmark", "machine", "env", "commit", "kind", "previous_commit", "statistic", "change")  # of p95 --json's flags
PLAN_KEYS = FLAG_KEYS + ("counts",)
VERDICT_KEYS = ("benchmark", "machine", "env", "commit", "confirmed")


def register(subparsers):
    parser = subparsers.add_parser("confirm", help="re-measure new flags before alerting", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--plan", metavar="PLAN", help="write the re-measurement plan of the new flags")
    mode.add_argument("--decide", metavar="PLAN", help="decide each planned flag from its new samples")
    parser.add_argument("--flags", help="kvcache-bench p95's --json (with --plan)")
    parser.add_argument("--confirmations", help="verdicts so far (read with --plan, appended with --decide)")
    parser.add_argument("--results", help="asv results directory (default: asv.conf.json's results_dir)")
    parser.add_argument("--config", help="asv config file (default: asv.conf.json here, if there is one)")
    parser.set_defaults(func=run)


def run(args):
    results_dir = project.load_project(args.config).results_dir_or(args.results)
    if args.plan:
        if not args.flags:
            raise UserError("--plan needs --flags: the JSON that kvcache-bench p95 --json wrote")
        flags = _read_entries(args.flags, "--flags", "flags", FLAG_KEYS, "pass the JSON that kvcache-bench p95 --json wrote")
        for line in write_plan(args.plan, flags, load_verdicts(args.confirmations), results_dir):
            print(line)
        return 0
    if not args.confirmations:
        raise UserError("--decide needs --confirmations: the file the verdicts are appended to")
    plan = {"flags": _read_entries(args.decide, "--decide", "flags", PLAN_KEYS, "pass the plan that confirm --plan wrote")}
    for verdict in decide(plan, results_dir, args.confirmations):
        state = "stands" if verdict["confirmed"] else "dismissed"
        print(f"{state}: {verdict['benchmark']} at {verdict['commit'][:8]}: re-measured {verdict['remeasured_change']:+.0%} against flagged {verdict['flagged_change']:+.0%}")
    return 0


def agrees(flagged_change, statistic, before, after):
    """Whether a re-measurement (``before``/``after``: samples, or ``(value,)`` of a track)
    shows at least half of ``flagged_change`` in ``statistic``; and the change it shows."""
    changes = []
    if "p95" in statistic:
        changes.append(stats.p95(after) / stats.p95(before) - 1)
    if "median" in statistic:
        changes.append(float(np.median(after) / np.median(before)) - 1)
    shown = max(changes)
    return shown >= flagged_change / 2, shown


def load_verdicts(path):
    """``{(benchmark, machine, env, commit): verdict}``; empty when ``path`` is None or missing."""
    return {(v["benchmark"], v["machine"], v["env"], v["commit"]): v for v in _verdicts_in(path)}


def apply_verdicts(flags, verdicts):
    """``(flags, dismissed)``: the regression flags a re-measurement dismissed, set apart."""
    kept, dismissed = [], []
    for flag in flags:
        verdict = verdicts.get((flag.benchmark, flag.machine, flag.env, flag.commit))
        (dismissed if flag.kind == "regression" and verdict and not verdict["confirmed"] else kept).append(flag)
    return kept, dismissed


def write_plan(path, flags, verdicts, results_dir):
    """Write the plan of the regression flags without a verdict; return its ``P C REGEX`` lines."""
    counts = _sample_counts(results_dir)
    planned = []
    for flag in flags:
        key = (flag["benchmark"], flag["machine"], flag["env"], flag["commit"])
        if flag["kind"] != "regression" or key in verdicts or not flag["previous_commit"]:
            continue
        before = (flag["benchmark"], flag["machine"], flag["env"], flag["previous_commit"])
        planned.append({**flag, "counts": [counts.get(before, 0), counts.get(key, 0)]})
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"flags": planned}, out, indent=1)
    return [f"{f['previous_commit']} {f['commit']} ^{re.escape(f['benchmark'])}$" for f in planned]


def decide(plan, results_dir, confirmations):
    """Verdicts of the planned flags from the samples added since the plan; appended to
    ``confirmations``. A flag with nothing new at either commit gets no verdict (a warning)."""
    measurements = {(m.benchmark, m.machine, m.env, m.commit): m for m in read_measurements(results_dir, warn)}
    verdicts = []
    for flag in plan["flags"]:
        new = []
        for commit, count in zip((flag["previous_commit"], flag["commit"]), flag["counts"]):
            m = measurements.get((flag["benchmark"], flag["machine"], flag["env"], commit))
            new.append(_added(m, count))
        if not all(new):
            warn(f"no new samples of {flag['benchmark']} at {flag['previous_commit'][:8]} and {flag['commit'][:8]}: left undecided")
            continue
        confirmed, shown = agrees(flag["change"], flag["statistic"], *new)
        verdicts.append(
            {key: flag[key] for key in ("benchmark", "machine", "env", "commit", "previous_commit", "statistic")}
            | {"confirmed": bool(confirmed), "flagged_change": flag["change"], "remeasured_change": shown}
        )
    existing = _verdicts_in(confirmations)
    write_text_atomically(confirmations, json.dumps({"verdicts": existing + verdicts}, indent=1))  # a failure leaves the old file
    return verdicts


def _added(measurement, count):
    """The samples appended after the first ``count`` (a track's value when it has none)."""
    if measurement is None:
        return ()
    if measurement.source != "samples":
        return (measurement.value_ms,)
    return measurement.samples_ms[count:]


def _sample_counts(results_dir):
    return {(m.benchmark, m.machine, m.env, m.commit): len(m.samples_ms) for m in read_measurements(results_dir, warn)}


def _verdicts_in(path):
    """The verdicts in the file ``path``; none when ``path`` is None or missing."""
    if path is None or not os.path.exists(path):
        return []
    fix = "each needs the keys confirm --decide writes: fix or remove that entry"
    return _read_entries(path, "--confirmations", "verdicts", VERDICT_KEYS, fix, required=False)


def _read_entries(path, option, list_key, keys, fix, required=True):
    """The list ``list_key`` of the JSON object in ``path``, each entry an object with ``keys``
    (a missing list is empty unless ``required``); else a UserError naming the file, what is
    missing, and ``fix``."""
    data = _read_json(path, option)
    entries = data.get(list_key, None if required else []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise UserError(f"{option} {path} has no {list_key!r} list: {fix}")
    for i, entry in enumerate(entries):
        missing = [key for key in keys if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise UserError(f"{option} {path}: {list_key[:-1]} {i} lacks {', '.join(missing)}: {fix}")
    return entries


def _read_json(path, option):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {option} {path}: {' '.join(str(error).split())}")
