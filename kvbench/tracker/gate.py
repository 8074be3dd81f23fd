"""``kvcache-bench gate BASE HEAD``: fail (exit 1) when HEAD's p95 is worse than BASE's.

The rule, per benchmark measured at both commits on the machine: with raw samples at both,
HEAD regresses when the 90% percentile-bootstrap CI of p95(HEAD) / p95(BASE) lies wholly
above ``1 + threshold`` (its lower end is a one-sided 95% bound). Without samples at one of
them (a ``track_`` p95, or results kept without ``--record-samples``) the point values are
compared: ratio above ``1 + threshold``. With ``--min-rise-ms``, the p95 must also have risen
by more than that many milliseconds (a noise floor for a shared machine). Prints a markdown
table fit for a PR comment.
Exit 0: no regression; 1: a regression; 2: bad input.
"""

from dataclasses import dataclass, replace

from . import project, stats, tables
from .read import read_measurements
from ..errors import UserError
from .p95 import MIN_RISE_HELP, check_min_rise, check_threshold, warn


def register(subparsers):
    parser = subparsers.add_parser(
        "gate", help="exit 1 when HEAD's p95 regressed from BASE's", description=__doc__
    )
    parser.add_argument("base", metavar="BASE", help="commit, short hash or branch")
    parser.add_argument("head", metavar="HEAD", help="commit, short hash or branch")
    parser.add_argument("--results", help="asv results directory (default: asv.conf.json's results_dir)")
    parser.add_argument("--machine", help="asv machine name (needed when several have both commits)")
    parser.add_argument(
        "--threshold", type=float, default=0.10, help="relative p95 rise that fails (default 0.10)"
    )
    parser.add_argument("--min-rise-ms", type=float, default=0.0, help=MIN_RISE_HELP)
    parser.add_argument("--config", help="asv config file (default: asv.conf.json here, if there is one)")
    parser.set_defaults(func=run)


def run(args, write_line=print):
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
    rows = [compare(at_base[key], at_head[key], args.threshold, args.min_rise_ms) for key in common]
    if len({env for _, env in common}) > 1:  # name the environment where it is not the only one
        rows = [replace(row, benchmark=f"{row.benchmark} [{env}]") for row, (_, env) in zip(rows, common)]
    n_regressions = sum(row.regression for row in rows)
    write_comment(rows, machine, base, head, args.threshold, args.min_rise_ms, write_line)
    if any(not row.sampled for row in rows):
        warn(
            "some benchmarks have no raw samples at BASE or HEAD: compared by their point values, no significance test"
        )
    return 1 if n_regressions else 0


@dataclass(frozen=True)
class Row:
    """One benchmark's comparison; ``ci`` is None without samples at both commits."""

    benchmark: str
    base_ms: float
    head_ms: float
    ratio: float
    ci: tuple | None
    regression: bool
    sampled: bool


def compare(base, head, threshold, min_rise_ms=0.0):
    """Compare two measurements of one benchmark by the gate's rule (module docstring)."""
    if base.samples_ms and head.samples_ms:
        base_ms, head_ms = stats.p95(base.samples_ms), stats.p95(head.samples_ms)
        ratio, low, high = stats.p95_ratio_ci(base.samples_ms, head.samples_ms)
        regression = stats.is_significant_regression(low, head_ms - base_ms, threshold, min_rise_ms)
        return Row(base.benchmark, base_ms, head_ms, ratio, (low, high), regression, True)
    base_ms, head_ms = base.value_ms, head.value_ms
    ratio = head_ms / base_ms if base_ms > 0 else float("inf")
    regression = ratio > 1 + threshold and head_ms - base_ms > min_rise_ms
    return Row(base.benchmark, base_ms, head_ms, ratio, None, regression, False)


def write_comment(rows, machine, base, head, threshold, min_rise_ms, write_line):
    """The PR comment: a verdict line, the table, the rule."""
    n = sum(row.regression for row in rows)
    verdict = f"**{n} p95 regression(s)**" if n else "no p95 regression"
    write_line(f"### kvcache-bench gate: {verdict}")
    write_line("")
    write_line(
        f"HEAD `{tables.short(head)}` vs BASE `{tables.short(base)}` on machine `{machine}`, threshold {threshold:.0%}."
    )
    write_line("")
    table_rows = [
        [
            f"`{r.benchmark}`",
            tables.ms(r.base_ms),
            tables.ms(r.head_ms),
            f"{r.ratio:.2f}",
            f"{r.ci[0]:.2f}-{r.ci[1]:.2f}" if r.ci else "no samples",
            "**regression**" if r.regression else "ok",
        ]
        for r in rows
    ]
    tables.write_table(
        ["benchmark", "BASE p95 ms", "HEAD p95 ms", "ratio", "90% CI", "verdict"], table_rows, write_line
    )
    write_line("")
    write_line(
        f"Regression: the 90% bootstrap CI of p95(HEAD)/p95(BASE) lies above {1 + threshold:.2f} "
        "(point ratio where a side has no raw samples)"
        + (f", and p95 rose by more than {tables.ms(min_rise_ms)} ms." if min_rise_ms else ".")
    )


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
            f"no results for {role} {rev} ({tables.short(commit)}) on machine {machine} in {results_dir}: "
            f"run `asv continuous BASE HEAD` or `asv run --record-samples` for it first"
        )
    return found
