"""The tracker's text reports: markdown tables and number formats, the p95 report, the gate's
PR comment. Renderers take a ``write_line`` sink (print, a file, a list), and compute nothing."""


def write_table(headers, rows, write_line):
    """Write a GitHub-flavoured markdown table, one line per ``write_line`` call."""
    write_line("| " + " | ".join(headers) + " |")
    write_line("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        write_line("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |")


def ms(value):
    """Milliseconds: 3 decimals under 1, 2 under 100, none above (``-`` none, ``?`` unbounded)."""
    if value is None:
        return "-"
    if value != value or value in (float("inf"), float("-inf")):
        return "?"
    return f"{value:.0f}" if value >= 100 else f"{value:.3f}" if value < 1 else f"{value:.2f}"


def ci(low, high):
    """A confidence interval as ``[low, high]`` (``?`` for an unbounded end)."""
    if low is None:
        return "-"
    return f"[{ms(low)}, {ms(high)}]"


def some(names, first=3):
    """``names`` in a few words: all of them when they are few, else the count and the first
    ``first`` ("12 benchmarks: a, b, c, ...")."""
    names = list(names)
    if len(names) <= first:
        return ", ".join(names)
    return f"{len(names)} benchmarks: {', '.join(names[:first])}, ..."


def short(commit):
    return commit[:8] if commit else "-"


def write_gate_comment(rows, machine, base, head, min_rise_ms, write_line):
    """The gate's PR comment: the verdict, the regressions, then every row folded."""
    flagged = [r for r in rows if r.regression]
    statistics = {r.statistic for r in rows}
    what = f"{statistics.pop()} " if len(statistics) == 1 else ""
    verdict = f"**{len(flagged)} {what}regression(s)**" if flagged else f"no {what}regression"
    write_line(f"### kvcache-bench gate: {verdict}")
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
        "rounds, the lower end of a 98% bootstrap interval of HEAD/BASE over each commit's rounds "
        "(processes) above 1; history, the ratio above the history bound, which two neighbouring commits of main "
        "on this machine exceed 2% of the time"
        + (f"; and up by more than {ms(min_rise_ms)} ms." if min_rise_ms else ".")
    )
    write_line("")
    write_line("</details>")


def _write_gate_table(rows, write_line):
    table = [
        [
            f"`{r.benchmark}`",
            r.statistic,
            ms(r.base_ms),
            ms(r.head_ms),
            f"{r.ratio:.2f}",
            f"{r.ci[0]:.2f}-{r.ci[1]:.2f}" if r.ci else "none",
            f"{r.history_bound:.2f}" if r.history_bound is not None else "none",
            r.noise,
            f"**{r.verdict}**" if r.regression else r.verdict,
        ]
        for r in rows
    ]
    headers = ["benchmark", "statistic", "BASE ms", "HEAD ms", "ratio", "98% interval", "history bound", "noise from", "verdict"]
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
        n_flags = sum(1 for f in flags if (f.benchmark, f.machine, f.env) == (s.benchmark, s.machine, s.env))
        rows.append(
            [
                s.benchmark,
                s.machine,
                len(s.points),
                short(last.commit),
                s.statistic,
                ms(last.p95_ms),
                ci(last.ci_low_ms, last.ci_high_ms),
                last.source,
                ms(s.budget_ms),
                n_flags or "",
            ]
        )
    headers = ["benchmark", "machine", "commits", "latest", "statistic", "ms", "95% CI", "from", "budget ms", "flags"]
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
    if flag.kind == "budget":
        before = f"{ms(flag.before_ms)} ms at {short(flag.previous_commit)}" if flag.previous_commit else "first commit"
        return f"budget: {where}: p95 {ms(flag.after_ms)} ms over the {ms(flag.budget_ms)} ms budget (before: {before})"
    moves = flag.moves or ()
    moved = " and ".join(f"{m.statistic} {ms(m.before)} -> {ms(m.after)} ms ({m.change:+.0%})" for m in moves) or (
        f"{flag.statistic} level {ms(flag.before_ms)} -> {ms(flag.after_ms)} ms ({flag.change:+.0%})"
    )
    notes = []
    if flag.pvalue is not None and flag.pvalue == flag.pvalue:
        notes.append(f"change point p={flag.pvalue:.1g}")
    if flag.far:
        notes.append("far beyond the noise")
    if len(flag.candidates) > 2:
        notes.append(f"first commit one of {', '.join(short(c) for c in flag.candidates)}")
    return f"regression: {where}: {moved}" + (f" ({'; '.join(notes)})" if notes else "")
