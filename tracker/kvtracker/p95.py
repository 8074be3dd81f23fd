"""``kvcache-tracker p95``: p95 per commit along the branch, regressions and budget overruns.

Reads asv's results (every machine, every commit, any benchmark names), orders the commits by
the branch's first-parent history (git), finds the change points of each p95 (and median)
series and flags them by the alert rule (``kvtracker.detect``). Flags that the main
job's re-measurement dismissed (``--confirmations``, written by ``kvcache-tracker confirm``)
are reported apart. Prints a table, and writes ``--json`` and an HTML page into asv's
dashboard (``--html``). Exits 0 whatever it flags (``gate`` is the pass/fail check); 2 on bad input.
"""

import json
import os
from dataclasses import replace

from .errors import UserError
from . import budgets as budgets_mod
from . import confirm, detect, html_page, options, project, render
from . import series as series_mod
from .options import MIN_RISE_HELP, check_min_rise, check_threshold, warn
from .read import current_versions, read_measurements


def register(subparsers):
    parser = subparsers.add_parser(
        "p95", help="p95 per commit, regressions and budget overruns", description=__doc__
    )
    options.add_results(parser)
    parser.add_argument(
        "--html", help="asv html directory to add the p95 page to (default: asv.conf.json's html_dir)"
    )
    parser.add_argument("--no-html", action="store_true", help="write no HTML page")
    parser.add_argument("--json", help="write the series and flags to this JSON file")
    options.add_threshold(parser, "relative level change that counts")
    parser.add_argument("--min-rise-ms", type=float, default=0.0, help=MIN_RISE_HELP)
    parser.add_argument(
        "--budgets",
        help=f"budgets file (default {budgets_mod.DEFAULT_BUDGETS} beside asv.conf.json, if it exists)",
    )
    parser.add_argument(
        "--confirmations",
        help="the main job's re-measurement verdicts (kvcache-tracker confirm), dismissed flags set apart: " + confirm.CONFIRMATIONS_HELP,
    )
    options.add_config(parser)
    parser.set_defaults(func=run)


def run(args):
    if args.threshold is not None:
        check_threshold(args.threshold)
    check_min_rise(args.min_rise_ms)
    proj = project.load_project(args.config)
    results_dir = proj.results_dir_or(args.results)
    html_dir = None if args.no_html else args.html or proj.html_dir
    check_outside_results(results_dir, "--json", args.json)
    check_outside_results(results_dir, "--html", html_dir)
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise UserError(f"cannot write --json {args.json}: its directory does not exist (create it first)")
    if html_dir and os.path.exists(html_dir) and not os.path.isdir(html_dir):
        raise UserError(f"cannot write the p95 page into {html_dir}: it is a file, not a directory (pass --html DIR)")
    budgets = _load_budgets(args.budgets, proj.config_dir)
    verdicts = confirm.load_verdicts(confirm.verdicts_path(results_dir, args.confirmations))
    measurements = read_measurements(results_dir, warn)
    order = _commit_order(proj, measurements)
    every = series_mod.build_series(
        measurements,
        order,
        lambda b: budgets_mod.budget_for(budgets, b),
        current_versions(results_dir),
        lambda b: proj.threshold_for(b, args.threshold),
    )
    all_series = [s for s in every if s.retired is None]
    retired = [s for s in every if s.retired is not None]
    _warn_about_inputs(measurements, order, budgets, all_series)
    analysis = detect.analyze(all_series, args.min_rise_ms)
    position = {commit: i for i, commit in enumerate(order)}
    flags, tentative, dismissed = confirm.apply_verdicts(analysis.flags, analysis.tentative, verdicts, position)
    analysis = replace(analysis, tentative=tentative)
    render.write_p95_report(all_series, flags, analysis.tentative, dismissed, print)
    render.write_retired(retired, print)
    if args.json:
        _write_json(args.json, all_series, retired, flags, analysis, dismissed, proj.commit_url)
    if html_dir:
        _write_page(html_dir, all_series, analysis, flags, dismissed, proj.commit_url)
    return 0


def check_outside_results(results_dir, option, path):
    """Results are only read: an output ``path`` inside ``results_dir`` is a ``UserError``."""
    if path is None:
        return
    results, target = os.path.realpath(results_dir), os.path.realpath(path)
    if os.path.commonpath([results, target]) == results:
        raise UserError(
            f"{option} {path} is inside the results directory {results_dir}: write it elsewhere (results are only read)"
        )


def _load_budgets(path, config_dir):
    if path is None:
        default = os.path.join(config_dir, budgets_mod.DEFAULT_BUDGETS)
        return budgets_mod.load_budgets(default) if os.path.exists(default) else {}
    return budgets_mod.load_budgets(path)


def _commit_order(proj, measurements):
    """The branch's first-parent history; by asv's commit dates when git cannot tell."""
    try:
        return project.first_parent_commits(proj.repo_dir, proj.branch, warn)
    except UserError as error:
        warn(f"{error}; ordering commits by their asv date instead")
        dates = {m.commit: m.date for m in measurements}
        return sorted(dates, key=lambda c: (dates[c], c))


def _warn_about_inputs(measurements, order, budgets, all_series):
    """One line per kind of doubtful input, each naming a count and the first few."""
    on_branch = set(order)
    off = {m.commit for m in measurements} - on_branch
    if off:
        warn(
            f"{len(off)} commit(s) with results are not on the branch's first-parent history: left out of the series"
        )
    no_samples = sorted({m.benchmark for m in measurements if m.source == "median"})
    if no_samples:
        warn(f"no raw samples for {render.some(no_samples)}: asv's medians are tracked there (a p95 needs `asv run --record-samples`)")
    averaged = sorted({m.benchmark for m in measurements if m.source == "samples" and m.number > 1})
    if averaged:
        warn(f"samples of {render.some(averaged)} each average several calls (number > 1): their p95 understates the per-call tail")
    unused = budgets_mod.unused_budgets(budgets, {m.benchmark for m in measurements})
    if unused:
        warn(f"the budgets for {render.some(unused)} match no benchmark in the results")
    zero = sorted({s.benchmark for s in all_series if any(not p.p95 > 0 for p in s.points)})
    if zero:
        warn(f"{render.some(zero)}: a p95 of 0 or not a number at some commits: left out of change-point detection")
    short = [s for s in all_series if len(s.points) < detect.CONFIRM + 1]
    if short:
        warn(f"{len(short)} series have fewer than {detect.CONFIRM + 1} commits measured, as a flag needs (e.g. {short[0].benchmark} on {short[0].machine})")


def _write_json(path, all_series, retired, flags, analysis, dismissed, commit_url):
    data = {
        "rule": detect.__doc__.split("\n\n")[2].replace("\n", " ").strip(),
        "series": [
            {
                "benchmark": s.benchmark,
                "machine": s.machine,
                "env": s.env,
                "version": s.version,
                "statistic": s.statistic,
                "unit": s.unit,
                "threshold": s.threshold,
                "budget_ms": s.budget_ms,
                "change_points": analysis.change_points[(s.benchmark, s.machine, s.env)],
                "points": [
                    {
                        "commit": p.commit,
                        "date": p.date,
                        "p95": _finite(p.p95),
                        "median": _finite(p.median),
                        "ci_low": _finite(p.ci_low),
                        "ci_high": _finite(p.ci_high),
                        "n_samples": p.n_samples,
                        "source": p.source,
                    }
                    for p in s.points
                ],
            }
            for s in all_series
        ],
        "retired": [
            {
                "benchmark": s.benchmark,
                "machine": s.machine,
                "env": s.env,
                "version": s.version,
                "reason": s.retired,
                "commits": len(s.points),
                "last_commit": s.points[-1].commit,
            }
            for s in retired
        ],
        "flags": [_flag_json(f, commit_url) for f in flags],
        "tentative": [_flag_json(f, commit_url) for f in analysis.tentative],
        "dismissed": [_flag_json(f, commit_url) for f in dismissed],
    }
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(json.dumps(data))  # json.dumps encodes in C; json.dump in Python
    except OSError as error:
        raise UserError(f"cannot write --json {path}: {error.strerror}")


def _flag_json(flag, commit_url):
    return {
        "benchmark": flag.benchmark,
        "machine": flag.machine,
        "env": flag.env,
        "commit": flag.commit,
        "kind": flag.kind,
        "statistic": flag.statistic,
        "unit": flag.unit,
        "before": flag.before,
        "after": flag.after,
        "change": flag.change,
        "pvalue": flag.pvalue,
        "previous_commit": flag.previous_commit,
        "baseline_commit": flag.baseline_commit,
        "candidates": list(flag.candidates),
        "moves": [{"statistic": m.statistic, "before": m.before, "after": m.after, "change": m.change} for m in flag.moves],
        "far": flag.far,
        "budget_ms": flag.budget_ms,
        "commit_url": commit_url + flag.commit if commit_url else None,
        "message": render.describe(flag),
    }


def _write_page(html_dir, all_series, analysis, flags, dismissed, commit_url):
    try:
        page = html_page.write_page(html_dir, all_series, analysis, flags, dismissed, commit_url)
        linked = html_page.link_from_index(html_dir)
    except OSError as error:
        raise UserError(f"cannot write the p95 page into {html_dir}: {error.strerror}")
    if not linked:
        warn(f"no asv index.html in {html_dir} (run `asv publish` first): {page} is not linked from the dashboard")


def _finite(value):
    """JSON has no infinity or NaN: such a value is written as null."""
    return value if value is not None and value == value and abs(value) != float("inf") else None
