"""``kvcache-bench p95``: p95 per commit along the branch, regressions and budget overruns.

Reads asv's results (every machine, every commit), orders the commits by the branch's
first-parent history (git), and flags confirmed p95 steps up beyond ``--threshold`` and
confirmed stretches over a budget (rules: ``kvbench.series``). Prints a table, and writes
``--json`` and an HTML page into asv's dashboard (``--html``). Exits 0 whatever it flags
(``gate`` is the pass/fail check); 2 on bad input.
"""

import json
import os
import sys

from . import budgets as budgets_mod
from . import html_page, project, tables
from . import series as series_mod
from .read import read_measurements
from ..errors import UserError

MIN_RISE_HELP = "a p95 rise must also exceed this many ms: a noise floor for a shared machine (default 0)"


def register(subparsers):
    parser = subparsers.add_parser(
        "p95", help="p95 per commit, regressions and budget overruns", description=__doc__
    )
    parser.add_argument("--results", help="asv results directory (default: asv.conf.json's results_dir)")
    parser.add_argument(
        "--html", help="asv html directory to add the p95 page to (default: asv.conf.json's html_dir)"
    )
    parser.add_argument("--json", help="write the series and flags to this JSON file")
    parser.add_argument(
        "--threshold", type=float, default=0.10, help="relative p95 rise that counts (default 0.10)"
    )
    parser.add_argument("--min-rise-ms", type=float, default=0.0, help=MIN_RISE_HELP)
    parser.add_argument(
        "--budgets",
        help=f"budgets file (default {budgets_mod.DEFAULT_BUDGETS} beside asv.conf.json, if it exists)",
    )
    parser.add_argument("--config", help="asv config file (default: asv.conf.json here, if there is one)")
    parser.set_defaults(func=run)


def run(args):
    check_threshold(args.threshold)
    check_min_rise(args.min_rise_ms)
    proj = project.load_project(args.config)
    results_dir = proj.results_dir_or(args.results)
    html_dir = args.html or proj.html_dir
    check_outside_results(results_dir, "--json", args.json)
    check_outside_results(results_dir, "--html", html_dir)
    budgets = _load_budgets(args.budgets, proj.config_dir)
    measurements = read_measurements(results_dir, warn)
    order = _commit_order(proj, measurements)
    all_series = series_mod.build_series(measurements, order, lambda b: budgets_mod.budget_for(budgets, b))
    _warn_about_inputs(measurements, order, budgets)
    flags = []
    for s in all_series:
        flags += series_mod.regression_flags(s, args.threshold, args.min_rise_ms) + series_mod.budget_flags(s)
    write_report(all_series, flags, args.threshold, print)
    if args.json:
        _write_json(args.json, all_series, flags, args.threshold, proj.commit_url)
    if html_dir:
        try:
            page = html_page.write_page(html_dir, all_series, flags, args.threshold, proj.commit_url)
            linked = html_page.link_from_index(html_dir)
        except OSError as error:
            raise UserError(f"cannot write the p95 page into {html_dir}: {error.strerror}")
        if not linked:
            warn(
                f"no asv index.html in {html_dir} (run `asv publish` first): {page} is not linked from the dashboard"
            )
    return 0


def check_threshold(threshold):
    if not threshold > 0:
        raise UserError(f"--threshold must be a positive fraction (0.10 = 10%), not {threshold}")


def check_min_rise(min_rise_ms):
    if not min_rise_ms >= 0:
        raise UserError(f"--min-rise-ms must be zero or a positive number of milliseconds, not {min_rise_ms}")


def check_outside_results(results_dir, option, path):
    """Results are only read: an output ``path`` inside ``results_dir`` is a ``UserError``."""
    if path is None:
        return
    results, target = os.path.realpath(results_dir), os.path.realpath(path)
    if os.path.commonpath([results, target]) == results:
        raise UserError(
            f"{option} {path} is inside the results directory {results_dir}: write it elsewhere (results are only read)"
        )


def warn(message):
    print(f"warning: {message}", file=sys.stderr)


def _load_budgets(path, config_dir):
    if path is None:
        default = os.path.join(config_dir, budgets_mod.DEFAULT_BUDGETS)
        return budgets_mod.load_budgets(default) if os.path.exists(default) else {}
    return budgets_mod.load_budgets(path)


def _commit_order(proj, measurements):
    """The branch's first-parent history; by asv's commit dates when git cannot tell."""
    try:
        return project.first_parent_commits(proj.repo_dir, proj.branch)
    except UserError as error:
        warn(f"{error}; ordering commits by their asv date instead")
        dates = {m.commit: m.date for m in measurements}
        return sorted(dates, key=lambda c: (dates[c], c))


def _warn_about_inputs(measurements, order, budgets):
    on_branch = set(order)
    off = {m.commit for m in measurements} - on_branch
    if off:
        warn(
            f"{len(off)} commit(s) with results are not on the branch's first-parent history: left out of the series"
        )
    no_samples = sorted({m.benchmark for m in measurements if m.source == "median"})
    if no_samples:
        warn(
            f"no raw samples for {', '.join(no_samples)} at some commits (rerun with `asv run --record-samples`): asv's median stands in for their p95 there"
        )
    averaged = sorted({m.benchmark for m in measurements if m.source == "samples" and m.number > 1})
    if averaged:
        warn(
            f"samples of {', '.join(averaged)} each average several calls (number > 1): their p95 understates the per-call tail"
        )
    for name in budgets_mod.unused_budgets(budgets, {m.benchmark for m in measurements}):
        warn(f"the budget for {name} matches no benchmark in the results")


def write_report(all_series, flags, threshold, write_line):
    """The terminal report: one row per series, then one line per flag."""
    rows = []
    for s in all_series:
        last = s.points[-1]
        n_flags = sum(1 for f in flags if (f.benchmark, f.machine, f.env) == (s.benchmark, s.machine, s.env))
        rows.append(
            [
                s.benchmark,
                s.machine,
                len(s.points),
                tables.short(last.commit),
                tables.ms(last.p95_ms),
                tables.ci(last.ci_low_ms, last.ci_high_ms),
                last.source,
                tables.ms(s.budget_ms),
                n_flags or "",
            ]
        )
    headers = ["benchmark", "machine", "commits", "latest", "p95 ms", "95% CI", "from", "budget ms", "flags"]
    tables.write_table(headers, rows, write_line)
    write_line("")
    write_line(f"{len(flags)} flag(s) (threshold {threshold:.0%}):")
    for f in flags:
        write_line(f"- {describe(f)}")


def describe(flag):
    """One line saying what a flag means."""
    where = f"{flag.benchmark} on {flag.machine} at {tables.short(flag.commit)}"
    before = (
        f"{tables.ms(flag.p95_before_ms)} ms at {tables.short(flag.previous_commit)}"
        if flag.previous_commit
        else "first commit"
    )
    if flag.kind == "budget":
        return f"budget: {where}: p95 {tables.ms(flag.p95_after_ms)} ms over the {tables.ms(flag.budget_ms)} ms budget (before: {before})"
    line = f"regression: {where}: p95 {tables.ms(flag.p95_before_ms)} -> {tables.ms(flag.p95_after_ms)} ms"
    if flag.ratio_ci:
        ratio, low, high = flag.ratio_ci
        line += f" (x{ratio:.2f}, 90% CI {low:.2f}-{high:.2f} bootstrap)"
    return line


def _write_json(path, all_series, flags, threshold, commit_url):
    data = {
        "threshold": threshold,
        "series": [
            {
                "benchmark": s.benchmark,
                "machine": s.machine,
                "env": s.env,
                "budget_ms": s.budget_ms,
                "points": [
                    {
                        "commit": p.commit,
                        "date": p.date,
                        "p95_ms": p.p95_ms,
                        "ci_low_ms": _finite(p.ci_low_ms),
                        "ci_high_ms": _finite(p.ci_high_ms),
                        "n_samples": p.n_samples,
                        "source": p.source,
                    }
                    for p in s.points
                ],
            }
            for s in all_series
        ],
        "flags": [_flag_json(f, commit_url) for f in flags],
    }
    try:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
    except OSError as error:
        raise UserError(f"cannot write --json {path}: {error.strerror}")


def _flag_json(flag, commit_url):
    ratio, low, high = flag.ratio_ci or (None, None, None)
    return {
        "benchmark": flag.benchmark,
        "machine": flag.machine,
        "env": flag.env,
        "commit": flag.commit,
        "kind": flag.kind,
        "p95_before_ms": flag.p95_before_ms,
        "p95_after_ms": flag.p95_after_ms,
        "previous_commit": flag.previous_commit,
        "ratio": ratio,
        "ratio_ci90": [low, high] if low is not None else None,
        "budget_ms": flag.budget_ms,
        "commit_url": commit_url + flag.commit if commit_url else None,
        "message": describe(flag),
    }


def _finite(value):
    """JSON has no infinity: an unbounded CI end is written as null."""
    return value if value is not None and abs(value) != float("inf") else None
