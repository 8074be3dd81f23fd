"""The tracker's text reports: markdown tables and number formats, the p95 report, the gate's
PR comment. Renderers take a ``write_line`` sink (print, a file, a list), and compute nothing."""


def write_table(headers, rows, write_line):
    """Write a GitHub-flavoured markdown table, one line per ``write_line`` call."""
    write_line("| " + " | ".join(headers) + " |")
    write_line("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        write_line("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |")


TIME_UNITS = (("s", 1e-3), ("ms", 1.0), ("µs", 1e3), ("ns", 1e6))  # label, factor from ms


def display_unit(unit, values):
    """``(label, factor)`` to show values of ``unit`` with: a time (ms) in the unit among s, ms,
    µs and ns that puts the typical value (the median of the positive finite ones) at 1 or
    more; another unit as it is."""
    if unit != "ms":
        return unit, 1.0
    typical = [v for v in values if v is not None and 0 < v < float("inf")]
    typical = sorted(typical)[len(typical) // 2] if typical else 1.0
    return next(((label, factor) for label, factor in TIME_UNITS if typical * factor >= 1), TIME_UNITS[-1])


def amount(value, shown):
    """``value`` in the display unit ``shown`` (``display_unit``): 3 significant digits
    ("130 µs", "1.25 s", "4.10 probes", "1.23M instructions"); ``-`` none, ``?`` unbounded."""
    if value is None:
        return "-"
    if value != value or value in (float("inf"), float("-inf")):
        return "?"
    label, factor = shown
    v = value * factor
    suffix = ""
    if label not in ("s", "ms", "µs", "ns") and abs(v) >= 1e4:
        for suffix, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(v) >= size:
                v /= size
                break
    digits = f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}" if abs(v) >= 1 else f"{v:#.3g}"
    return f"{digits}{suffix} {label}".rstrip()


def ms(value):
    """Milliseconds (a budget, a noise floor): ``amount`` in the unit that suits the value."""
    return amount(value, display_unit("ms", [value]))


def ci(low, high, shown):
    """A confidence interval as ``[low, high]`` (``?`` for an unbounded end)."""
    if low is None:
        return "-"
    return f"[{amount(low, shown)}, {amount(high, shown)}]"


def some(names, first=3):
    """``names`` in a few words: all of them when they are few, else the count and the first
    ``first`` ("12 benchmarks: a, b, c, ...")."""
    names = list(names)
    if len(names) <= first:
        return ", ".join(names)
    return f"{len(names)} benchmarks: {', '.join(names[:first])}, ..."


def short(commit):
    return commit[:8] if commit else "-"


def write_gate_comment(rows, machine, base, head, min_rise_ms, write_line, min_history):
    """The gate's PR comment: the verdict, the regressions, then every row folded, and what
    each row's "noise from" means (``min_history``: the commits of main a history bound needs)."""
    flagged = [r for r in rows if r.regression]
    statistics = {r.statistic for r in rows}
    what = f"{statistics.pop()} " if len(statistics) == 1 else ""
    verdict = f"**{len(flagged)} {what}regression(s)**" if flagged else f"no {what}regression"
    write_line(f"### kvcache-tracker gate: {verdict}")
    write_line("")
    thresholds = " or ".join(f"{t:.0%}" for t in sorted({r.threshold for r in rows}, reverse=True))
    write_line(f"HEAD `{short(head)}` vs BASE `{short(base)}` on machine `{machine}`, threshold {thresholds}.")
    write_line("")
    if flagged:
        _write_gate_table(flagged, write_line)
        write_line("")
    write_line(f"<details><summary>all {len(rows)} benchmarks</summary>")
    write_line("")
    _write_gate_table(sorted(rows, key=lambda r: (not r.regression, -_finite_or(r.ratio, 0))), write_line)
    write_line("")
    write_line(
        "Regression: the row's statistic up by more than its threshold, beyond the noise its \"noise from\" names: "
        "**rounds**, this run alone: the lower end of the 98% interval (a bootstrap of HEAD/BASE over each "
        "commit's rounds, the processes of this run) above 1, main's history not used: too short on this machine "
        f"(a history bound needs {min_history} measured commits of main, with {min_history - 1} neighbouring "
        "pairs outside the steps the alert rule took as real); **history**, one value a side, no interval: the "
        "ratio above the history bound, which two neighbouring commits of main on this machine exceed 2% of "
        "the time; **rounds+history**, both. The interval is this run's own; the history bound is not folded "
        "into it"
        + (f"; and up by more than {ms(min_rise_ms)}." if min_rise_ms else ".")
    )
    write_line("")
    write_line("</details>")


def _write_gate_table(rows, write_line):
    shown = {id(r): display_unit(r.unit, [r.base]) for r in rows}
    table = [
        [
            f"`{r.benchmark}`",
            r.statistic,
            amount(r.base, shown[id(r)]),
            amount(r.head, shown[id(r)]),
            f"{r.ratio:.2f}",
            f"{r.ci[0]:.2f}-{r.ci[1]:.2f}" if r.ci else "none",
            f"{r.history_bound:.2f}" if r.history_bound is not None else "none",
            r.noise,
            f"**{r.verdict}**" if r.regression else r.verdict,
        ]
        for r in rows
    ]
    headers = ["benchmark", "statistic", "BASE", "HEAD", "ratio", "98% interval", "history bound", "noise from", "verdict"]
    write_table(headers, table, write_line)


def _finite_or(value, default):
    return value if value == value and abs(value) != float("inf") else default


def write_p95_report(all_series, flags, tentative, dismissed, write_line):
    """The terminal report: the flags first, then one row per series."""
    thresholds = sorted({s.threshold for s in all_series}, reverse=True)
    write_line(f"{len(flags)} flag(s) (threshold {' or '.join(f'{t:.0%}' for t in thresholds) or '-'}):")
    for f in flags:
        write_line(f"- {describe(f)}")
    for title, extra in (("tentative (a new level, not yet held by enough commits)", tentative),
                         ("dismissed by re-measurement", dismissed)):
        if extra:
            write_line(f"{len(extra)} {title}:")
            for f in extra:
                write_line(f"- {describe(f)}")
    write_line("")
    rows = []
    for s in all_series:
        last = s.points[-1]
        shown = display_unit(s.unit, [p.p95 for p in s.points])
        n_flags = sum(1 for f in flags if (f.benchmark, f.machine, f.env) == (s.benchmark, s.machine, s.env))
        rows.append(
            [
                s.benchmark,
                s.machine,
                len(s.points),
                short(last.commit),
                s.statistic,
                amount(last.p95, shown),
                ci(last.ci_low, last.ci_high, shown),
                last.source,
                amount(s.budget_ms, shown),
                n_flags or "",
            ]
        )
    headers = ["benchmark", "machine", "commits", "latest", "statistic", "now", "95% CI", "from", "budget", "flags"]
    write_table(headers, rows, write_line)


def write_retired(retired, write_line):
    """One line for the series that are not judged (a benchmark's older asv version, or one no
    longer in the suite), if any."""
    if retired:
        write_line("")
        write_line(
            f"{len(retired)} retired series, not judged (as asv shows none of them): "
            + "; ".join(f"{s.benchmark} on {s.machine} ({s.retired})" for s in retired[:3])
            + ("; ..." if len(retired) > 3 else "")
        )


def describe(flag):
    """One line saying what a flag means."""
    where = f"{flag.benchmark} on {flag.machine} at {short(flag.commit)}"
    shown = display_unit(flag.unit, [flag.before if flag.before else flag.after])
    if flag.kind == "budget":
        before = f"{amount(flag.before, shown)} at {short(flag.previous_commit)}" if flag.previous_commit else "first commit"
        return f"budget: {where}: p95 {amount(flag.after, shown)} over the {amount(flag.budget_ms, shown)} budget (before: {before})"
    moves = flag.moves or ()
    moved = " and ".join(f"{m.statistic} {amount(m.before, shown)} -> {amount(m.after, shown)} ({m.change:+.0%})" for m in moves) or (
        f"{flag.statistic} level {amount(flag.before, shown)} -> {amount(flag.after, shown)} ({flag.change:+.0%})"
    )
    notes = []
    if flag.pvalue is not None and flag.pvalue == flag.pvalue:
        notes.append(f"change point p={flag.pvalue:.1g}")
    if flag.far:
        notes.append("far beyond the noise")
    if len(flag.candidates) > 2:
        notes.append(f"first commit one of {', '.join(short(c) for c in flag.candidates)}")
    return f"regression: {where}: {moved}" + (f" ({'; '.join(notes)})" if notes else "")
