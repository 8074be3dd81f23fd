"""``kvcache-tracker gate BASE HEAD``: fail (exit 1) when HEAD's p95 is worse than BASE's.

The rule, per benchmark measured at both commits on the machine: HEAD regresses when its p95
is more than ``threshold`` above BASE's, *and* the ratio p95(HEAD) / p95(BASE) is beyond the
noise. Two noises are judged, each where it can be: within the run, the lower end of the 98%
interval of the ratio from a hierarchical bootstrap over each commit's rounds (asv runs each
round in a process of its own) must be above 1; between runs, the ratio must exceed what two
neighbouring commits of the branch's history on this machine reach 2% of the time
(``stats.neighbour_ratio_bound``: an empirical quantile, so a machine's heavy tails and its
switches between two speeds are in it; the steps the alert rule took as real are left out),
where the branch has at least ``stats.MIN_HISTORY`` measured commits. A ``track_`` p95 (one number a side) is judged by the history alone; with
neither samples nor history, nothing tells the noise: the row says "no noise estimate" and
does not fail the gate (the command warns).
With ``--min-rise-ms``, the p95 must also have risen by more than that many milliseconds.
Prints a markdown table fit for a PR comment: the verdict and the flagged rows first.
Exit 0: no regression; 1: a regression; 2: bad input.
"""

import functools
from dataclasses import dataclass, replace

from . import detect, options, project, render, stats
from .read import read_measurements
from .errors import UserError
from .options import MIN_RISE_HELP, check_min_rise, check_threshold, warn


def register(subparsers):
    parser = subparsers.add_parser(
        "gate", help="exit 1 when HEAD's p95 regressed from BASE's", description=__doc__
    )
    parser.add_argument("base", metavar="BASE", help="commit, short hash or branch")
    parser.add_argument("head", metavar="HEAD", help="commit, short hash or branch")
    options.add_results(parser)
    parser.add_argument("--machine", help="asv machine name (needed when several have both commits)")
    options.add_threshold(parser, "relative rise that fails")
    parser.add_argument("--min-rise-ms", type=float, default=0.0, help=MIN_RISE_HELP)
    options.add_config(parser)
    parser.set_defaults(func=run)


def run(args, write_line=print):
    if args.threshold is not None:
        check_threshold(args.threshold)
    check_min_rise(args.min_rise_ms)
    proj = project.load_project(args.config)
    results_dir = proj.results_dir_or(args.results)
    base = project.resolve_commit(proj.repo_dir, args.base)
    head = project.resolve_commit(proj.repo_dir, args.head)
    measurements = read_measurements(results_dir, warn)
    machine = _pick_machine(measurements, args.machine, base, head, results_dir)
    at_base = _at(measurements, machine, base, "BASE", args.base, results_dir)
    at_head = _at(measurements, machine, head, "HEAD", args.head, results_dir)
    common = sorted(at_base.keys() & at_head.keys())
    if not common:
        raise UserError(
            f"BASE {args.base} and HEAD {args.head} share no p95 benchmark on {machine}: run the same benchmarks at both"
        )
    bounds = _history_bounds(proj, measurements, machine)
    rows = [
        compare(
            at_base[key], at_head[key], proj.threshold_for(key[0], args.threshold), args.min_rise_ms,
            bounds.get((*key, at_head[key].version)),
        )
        for key in common
    ]
    if len({env for _, env in common}) > 1:  # name the environment where it is not the only one
        rows = [replace(row, benchmark=f"{row.benchmark} [{env}]") for row, (_, env) in zip(rows, common)]
    render.write_gate_comment(rows, machine, base, head, args.min_rise_ms, write_line, stats.MIN_HISTORY)
    for row in rows:
        if row.verdict == "no noise estimate":
            warn(f"{row.benchmark}: one value a side and fewer than {stats.MIN_HISTORY} commits of history on {machine}: not judged (measure main's history first)")
        if row.verdict == "no p95":
            warn(f"{row.benchmark}: a p95 of 0 or less at BASE or HEAD cannot be compared")
    return 1 if any(row.regression for row in rows) else 0


@dataclass(frozen=True)
class Row:
    """One benchmark's comparison; ``ci`` is None when there is no interval."""

    benchmark: str
    base: float
    head: float
    ratio: float
    ci: tuple | None  # the bootstrap interval of the ratio (rounds), or None
    verdict: str  # "regression", "ok", "no noise estimate", "no p95" or "new version"
    noise: str  # what judged the noise: "rounds", "rounds+history", "history" or "-"
    history_bound: float | None = None  # the branch's neighbouring-commit ratio bound, or None
    statistic: str = "p95"  # what is compared: "p95", "median" (asv's, without samples) or "value" (a track)
    threshold: float = 0.10  # the relative rise that fails
    unit: str = "ms"  # of base and head

    @property
    def regression(self):
        return self.verdict == "regression"


def compare(base, head, threshold, min_rise_ms=0.0, history_bound=None):
    """Compare two measurements of one benchmark by the gate's rule (module docstring); a
    benchmark whose asv version differs at the two commits measures something else: not
    compared, as asv does not."""
    statistic = statistic_of(base) if statistic_of(base) == statistic_of(head) else "median"
    row = functools.partial(Row, base.benchmark, statistic=statistic, threshold=threshold, unit=base.unit)
    if base.version != head.version:
        return row(base.value, head.value, float("nan"), None, "new version", "-")
    sampled = bool(base.samples and head.samples)
    base_value, head_value = (stats.p95(base.samples), stats.p95(head.samples)) if sampled else (base.value, head.value)
    if not (base_value > 0 and head_value > 0):
        return row(base_value, head_value, float("nan"), None, "no p95", "-")
    if sampled:
        ratio, low, high = stats.quantile_ratio_ci(base.sample_rounds, head.sample_rounds)
        ci, noise = (low, high), "rounds+history" if history_bound is not None else "rounds"
    elif history_bound is not None:
        ratio, low, ci, noise = head_value / base_value, None, None, "history"
    else:  # one number a side and no history: nothing tells its noise
        return row(base_value, head_value, head_value / base_value, None, "no noise estimate", "-")
    regression = stats.is_significant_regression(ratio, low, head_value - base_value, threshold, min_rise_ms, history_bound)
    return row(base_value, head_value, ratio, ci, "regression" if regression else "ok", noise, history_bound)


def statistic_of(measurement):
    """What a measurement's compared value is: the p95 of its samples, asv's median (no
    samples kept), a track's p95, or another track's value."""
    if measurement.source == "samples":
        return "p95"
    if measurement.source == "median":
        return "median"
    return "p95" if "p95" in measurement.benchmark.split("(", 1)[0].rsplit(".", 1)[-1] else "value"


def _history_bounds(proj, measurements, machine):
    """``{(benchmark, env, version): neighbour_ratio_bound}`` of the p95 along the branch on ``machine``."""
    try:
        order = {c: i for i, c in enumerate(project.first_parent_commits(proj.repo_dir, proj.branch))}
    except UserError:
        return {}
    series = {}
    for m in sorted((m for m in measurements if m.machine == machine and m.commit in order), key=lambda m: order[m.commit]):
        value = stats.p95(m.samples) if m.samples else m.value
        series.setdefault((m.benchmark, m.env, m.version), []).append(value)
    bounds = {
        key: stats.neighbour_ratio_bound(values, level_starts=detect.level_starts(values))
        for key, values in series.items()
        if all(v > 0 for v in values)
    }
    return {key: bound for key, bound in bounds.items() if bound is not None}


def _pick_machine(measurements, machine, base, head, results_dir):
    machines = sorted({m.machine for m in measurements})
    if machine is not None:
        if machine not in machines:
            raise UserError(
                f"unknown machine {machine}: the results in {results_dir} are from {', '.join(machines)}"
            )
        return machine
    both = sorted(
        {m.machine for m in measurements if m.commit == base}
        & {m.machine for m in measurements if m.commit == head}
    )
    if len(both) > 1:
        raise UserError(
            f"results for both commits on several machines ({', '.join(both)}): pick one with --machine"
        )
    return both[0] if both else machines[0]


def _at(measurements, machine, commit, role, rev, results_dir):
    found = {(m.benchmark, m.env): m for m in measurements if m.machine == machine and m.commit == commit}
    if not found:
        raise UserError(
            f"no results for {role} {rev} ({render.short(commit)}) on machine {machine} in {results_dir}: "
            f"run `asv continuous BASE HEAD` or `asv run --record-samples` for it first"
        )
    return found
