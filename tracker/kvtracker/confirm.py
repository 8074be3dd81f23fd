"""``kvcache-tracker confirm``: re-measure each new flag before alerting, as the main job does.

A flag says that commit C starts a level more than the threshold above the one before; when the
first commit of the level is uncertain, the flag lists its candidates C1..Ck (``detect``). The
main job measures the last commit at the reference level (P: for a step, usually the commit
before it; for creep, where the creep began; ``detect.Shift.before``) and every candidate once
more, in one asv run whose rounds alternate between them (``asv run --append-samples``: the new
samples are added after the ones each result had). Like a bisection (Chromium's Pinpoint), it
names the **culprit**: the first candidate whose re-measurement shows at least half the flagged
change against P's, in a statistic that moved. The flag then **stands**, at the culprit; when
no candidate shows it, the flag is **dismissed** as noise (a slow-measured stretch, not the
code). A level far beyond the noise (``detect``: not yet held by enough commits) is re-measured
the same way, at once, and is a flag when it stands.

1. ``confirm --plan PLAN --flags P95_JSON``: writes PLAN with the flags (and far-beyond levels)
   that have no verdict yet, with the sample counts of P and each candidate, and prints one
   line per flag, ``REGEX P C1 .. Ck``, for the asv run (REGEX selects the benchmark's
   combination).
2. ``confirm --decide PLAN``: reads the samples added since the plan, and appends one verdict
   per flag to the verdicts file (created if missing; verdicts are only added; the file is
   replaced whole, so a failure leaves it as it was).

A verdict is found again for a later analysis of the same change when the flag's commit or
its candidates include the verdict's flagged commit or culprit: a decided change is never
re-measured. ``p95`` reports dismissed flags apart from the flags, and a standing one at its
culprit.
"""

import json
import os
import re
from dataclasses import replace

import numpy as np

from .atomic import write_text_atomically
from .errors import UserError
from . import detect, options, project, stats
from .options import warn
from .read import read_measurements


REMEASURE_RESAMPLES = 500  # bootstrap resamples of a re-measurement's interval
INTERVAL_ROUNDS, INTERVAL_SAMPLES = 2, 20  # rounds a side, and samples a round, an interval needs
FLAG_KEYS = ("benchmark", "machine", "env", "commit", "kind", "previous_commit", "statistic", "change")  # of p95 --json's flags
PLAN_KEYS = FLAG_KEYS + ("counts", "suspects", "before")
VERDICT_KEYS = ("benchmark", "machine", "env", "commit", "confirmed")
VERDICTS_FILE = "confirmations.json"  # in the results directory: CI's results branch keeps it with them
CONFIRMATIONS_HELP = f"the verdicts file (default: RESULTS_DIR/{VERDICTS_FILE}, beside the results they judge)"


def verdicts_path(results_dir, given=None):
    """``given`` (``--confirmations``) when set, else ``RESULTS_DIR/confirmations.json``.

    The verdicts live in the results directory so that whatever keeps the results keeps them
    too (scripts/results-branch.sh, across CI jobs whose workspace is wiped). asv ignores the
    file: ``asv.results.iter_results_paths`` (asv 0.6.6) reads ``.json`` files only in a
    directory that holds a valid ``machine.json``; in the results root, which holds none, it
    logs "Skipping results: could not load .../machine.json" and reads nothing. ``read.py``
    reads only machine directories too.
    """
    return given or os.path.join(results_dir, VERDICTS_FILE)


def register(subparsers):
    parser = subparsers.add_parser("confirm", help="re-measure new flags before alerting", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--plan", metavar="PLAN", help="write the re-measurement plan of the new flags")
    mode.add_argument("--decide", metavar="PLAN", help="decide each planned flag from its new samples")
    parser.add_argument("--flags", help="kvcache-tracker p95's --json (with --plan)")
    parser.add_argument("--confirmations", help=CONFIRMATIONS_HELP + "; read with --plan, appended to with --decide")
    options.add_results(parser)
    options.add_config(parser)
    parser.set_defaults(func=run)


def run(args):
    proj = project.load_project(args.config)
    results_dir = proj.results_dir_or(args.results)
    confirmations = verdicts_path(results_dir, args.confirmations)
    if args.plan:
        if not args.flags:
            raise UserError("--plan needs --flags: the JSON that kvcache-tracker p95 --json wrote")
        report = {
            key: _read_entries(args.flags, "--flags", key, FLAG_KEYS, "pass the JSON that kvcache-tracker p95 --json wrote", required=key == "flags")
            for key in ("flags", "tentative")
        }
        for line in write_plan(args.plan, report, load_verdicts(confirmations), results_dir, _branch_positions(proj)):
            print(line)
        return 0
    plan = {"flags": _read_entries(args.decide, "--decide", "flags", PLAN_KEYS, "pass the plan that confirm --plan wrote")}
    for verdict in decide(plan, results_dir, confirmations):
        if verdict["confirmed"]:
            state = f"stands at {verdict['culprit'][:8]}"
        else:
            state = f"dismissed at {verdict['commit'][:8]}"
        print(f"{state}: {verdict['benchmark']}: re-measured {verdict['remeasured_change']:+.0%} against flagged {verdict['flagged_change']:+.0%}")
    return 0


def agrees(moves, before, after):
    """Whether a re-measurement shows a change again: ``before`` and ``after`` are the two
    commits' new rounds (each a sequence of samples; a track's value is one round of one), and
    ``moves`` the flagged ``(statistic, change)`` pairs. It agrees when, for one of them, the
    re-measured change is at least half the flagged one and, where the rounds are enough to
    bootstrap (``INTERVAL_ROUNDS`` of ``INTERVAL_SAMPLES`` a side), the lower end of its 98%
    interval (``stats.quantile_ratio_ci``) is above 1: a re-measurement as noisy as the flag
    itself does not confirm it. Returns ``(agrees, the re-measured change of the statistic that
    agrees best)``."""
    judged = all(len(side) >= INTERVAL_ROUNDS and min(map(len, side)) >= INTERVAL_SAMPLES for side in (before, after))
    best = None
    for statistic, flagged in moves:
        q = stats.P95 if statistic in ("p95", "value") else 0.5
        if judged:
            ratio, low, _ = stats.quantile_ratio_ci(before, after, q, resamples=REMEASURE_RESAMPLES)
        else:
            ratio = stats.quantile(np.concatenate(after), q) / stats.quantile(np.concatenate(before), q)
            low = ratio
        agreed = ratio - 1 >= flagged / 2 and (low > 1 if judged else True)
        share = (ratio - 1) / flagged if flagged else 0.0
        if best is None or (agreed, share) > best[:2]:
            best = (agreed, share, ratio - 1)
    return best[0], best[2]


def name_culprit(moves, before, suspects):
    """The index of the first of ``suspects`` (the re-measured rounds of the commits that may
    be the first of the new level, oldest first) that ``agrees`` with ``moves`` against
    ``before`` (the last commit at the reference level, re-measured); None when none does
    (dismissed)."""
    for k, after in enumerate(suspects):
        if agrees(moves, before, after)[0]:
            return k
    return None


def load_verdicts(path):
    """``{(benchmark, machine, env): [verdict, ...]}``; empty when ``path`` is None or missing."""
    found = {}
    for v in _verdicts_in(path):
        found.setdefault((v["benchmark"], v["machine"], v["env"]), []).append(v)
    return found


def verdict_for(flag, verdicts, position=None):
    """The verdict of the change ``flag`` names (a ``detect.Flag`` or its JSON), or None, as
    ``power.raised_flags`` matches them: a standing verdict of its series whose flagged commit
    or culprit is the flag's commit or a candidate, or lies within ``detect.CONFIRM`` commits
    of the flag's commit (``position``: commit -> its place on the branch; the change point of
    one change moves as commits arrive); a dismissal whose re-measured candidates include all
    of the flag's (a flag that reaches a commit not yet re-measured is measured again), or, for
    a verdict that names no re-measured candidates, of the flag's own commit."""
    get = flag.get if isinstance(flag, dict) else lambda key: getattr(flag, key)
    suspects = {get("commit"), *(get("candidates") or ())}
    here = (position or {}).get(get("commit"))
    for verdict in verdicts.get((get("benchmark"), get("machine"), get("env")), []):
        named = {verdict["commit"], verdict.get("culprit")} - {None}
        if verdict["confirmed"]:
            near = here is not None and any(
                c in position and abs(position[c] - here) <= detect.CONFIRM for c in named
            )
            if named & suspects or near:
                return verdict
        elif "remeasured" in verdict and suspects <= set(verdict["remeasured"]) | {verdict["commit"]}:
            return verdict
        elif "remeasured" not in verdict and get("commit") == verdict["commit"]:  # a verdict of one commit
            return verdict
    return None


def apply_verdicts(flags, tentative, verdicts, position=None):
    """``(flags, tentative, dismissed)`` after the re-measurements: a regression flag, or a
    tentative level far beyond the noise, that a verdict upholds is a flag at its culprit; one
    a verdict dismissed is set apart; the others are left as they were."""
    kept, waiting, dismissed = [], [], []
    for flag in flags + tentative:
        verdict = verdict_for(flag, verdicts, position) if flag.kind == "regression" else None
        if verdict is None:
            (waiting if flag.tentative else kept).append(flag)
        elif verdict["confirmed"]:
            culprit = verdict.get("culprit") or flag.commit
            before = flag.previous_commit if culprit == flag.commit else verdict["previous_of_culprit"]
            kept.append(replace(flag, commit=culprit, previous_commit=before, tentative=False))
        else:
            dismissed.append(flag)
    return kept, waiting, dismissed


def write_plan(path, report, verdicts, results_dir, position=None):
    """Write the plan of the regression flags, and of the tentative levels far beyond the noise,
    that have no verdict (``report``: ``p95 --json``'s); return its ``REGEX P C1 .. Ck`` lines."""
    counts = _sample_counts(results_dir)
    planned = []
    for flag in report["flags"] + [f for f in report.get("tentative", []) if f.get("far")]:
        if flag["kind"] != "regression" or verdict_for(flag, verdicts, position) or not flag["previous_commit"]:
            continue
        suspects = flag.get("candidates") or [flag["commit"]]
        assert suspects[0] == flag["commit"], "a flag's candidates start at its commit: this is a bug in detect"
        before = flag.get("baseline_commit") or flag["previous_commit"]
        key = (flag["benchmark"], flag["machine"], flag["env"])
        planned.append({**flag, "suspects": suspects, "before": before,
                        "counts": [counts.get((*key, c), 0) for c in [before, *suspects]]})
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"flags": planned}, out, indent=1)
    return [f"^{re.escape(f['benchmark'])}$ {' '.join([f['before'], *f['suspects']])}" for f in planned]


def decide(plan, results_dir, confirmations):
    """Verdicts of the planned flags from the samples added since the plan; appended to
    ``confirmations``. A flag with nothing new at P or at a candidate gets no verdict (a
    warning)."""
    measurements = {(m.benchmark, m.machine, m.env, m.commit): m for m in read_measurements(results_dir, warn)}
    verdicts = []
    for flag in plan["flags"]:
        commits = [flag["before"], *flag["suspects"]]
        new = [
            _added(measurements.get((flag["benchmark"], flag["machine"], flag["env"], commit)), count)
            for commit, count in zip(commits, flag["counts"])
        ]
        if not all(new):
            warn(f"no new samples of {flag['benchmark']} at some of {', '.join(c[:8] for c in commits)}: left undecided")
            continue
        moves = [(m["statistic"], m["after"] / m["before"] - 1) for m in flag.get("moves") or []] or [
            (flag["statistic"].split("+")[0], flag["change"])
        ]
        named = name_culprit(moves, new[0], new[1:])
        shown = [agrees(moves, new[0], after)[1] for after in new[1:]]
        culprit = None if named is None else flag["suspects"][named]
        verdicts.append(
            {key: flag[key] for key in ("benchmark", "machine", "env", "commit", "previous_commit", "statistic")}
            | {
                "confirmed": named is not None,
                "culprit": culprit,
                "previous_of_culprit": None if named is None else ([flag["previous_commit"], *flag["suspects"]])[named],
                "flagged_change": flag["change"],
                "remeasured_change": shown[named if named is not None else int(np.argmax(shown))],
                "remeasured": dict(zip(flag["suspects"], shown)),
            }
        )
    existing = _verdicts_in(confirmations)
    write_text_atomically(confirmations, json.dumps({"verdicts": existing + verdicts}, indent=1))  # a failure leaves the old file
    return verdicts


def _branch_positions(proj):
    """``{commit: its place on the branch}`` (first parents, oldest first); empty when git
    cannot tell (verdicts then match by commit alone)."""
    try:
        return {commit: i for i, commit in enumerate(project.first_parent_commits(proj.repo_dir, proj.branch))}
    except UserError:
        return {}


def _added(measurement, count):
    """The rounds appended after the first ``count`` samples (a track's value as one round)."""
    if measurement is None:
        return ()
    if measurement.source != "samples":
        return ((measurement.value,),)
    added = measurement.samples[count:]
    return tuple(stats.split_rounds(added, measurement.rounds, measurement.round_size)) if added else ()


def _sample_counts(results_dir):
    return {(m.benchmark, m.machine, m.env, m.commit): len(m.samples) for m in read_measurements(results_dir, warn)}


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
