"""The p95 page of the published dashboard: ``HTML_DIR/p95.html``, linked from asv's index.

Self-contained (inline SVG drawn by matplotlib, no script, nothing fetched). Each series gets
a plot of p95 per commit with its CI, the budget line, and the flagged commits marked.
"""

import html
import io
import os

from matplotlib.figure import Figure

from . import render

PAGE = "p95.html"
MAX_TICKS = 30
NAV_ITEM = f'<li id="nav-li-p95"><a href="{PAGE}">p95</a></li>'
NAV_ANCHOR = '<li id="nav-li-regressions"><a href="#/regressions">Regressions</a></li>'


def write_page(html_dir, all_series, flags, change_points, threshold, commit_url):
    """Write the page; returns its path. Only ``p95.html`` is (re)written."""
    os.makedirs(html_dir, exist_ok=True)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>p95</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}.flag{color:#b00}</style></head><body>",
        "<p><a href='index.html'>&larr; dashboard</a></p><h1>p95 per commit</h1>",
        f"<p>Flags: a new p95 (or median) level more than {threshold:.0%} above the one before, found by "
        "change-point detection and held by enough later commits; or a stretch over the budget. "
        "Dotted lines: the change points of the p95. Rules: <code>kvbench/tracker/detect.py</code>.</p>",
        _flags_table(flags, commit_url),
    ]
    for s in all_series:
        parts.append(
            f"<h2>{html.escape(s.benchmark)}</h2><p>machine {html.escape(s.machine)}, env {html.escape(s.env)}"
            + (f", budget {render.ms(s.budget_ms)} ms" if s.budget_ms else "")
            + "</p>"
        )
        series_flags = [
            f for f in flags if (f.benchmark, f.machine, f.env) == (s.benchmark, s.machine, s.env)
        ]
        key = (s.benchmark, s.machine, s.env)
        parts.append(svg_of(plot_series(s, series_flags, change_points.get(key, ()))))
    parts.append("</body></html>")
    path = os.path.join(html_dir, PAGE)
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n".join(parts))
    return path


def link_from_index(html_dir):
    """Add a nav link to the page in asv's index.html (once); False if there is no index to link from."""
    index = os.path.join(html_dir, "index.html")
    if not os.path.exists(index):
        return False
    with open(index, encoding="utf-8") as f:
        text = f.read()
    if NAV_ITEM in text:
        return True
    if NAV_ANCHOR not in text:
        return False
    with open(index, "w", encoding="utf-8") as f:
        f.write(text.replace(NAV_ANCHOR, NAV_ANCHOR + "\n\t" + NAV_ITEM, 1))
    return True


def _flags_table(flags, commit_url):
    if not flags:
        return "<p>No flags.</p>"
    rows = [
        "<table><tr><th>kind</th><th>benchmark</th><th>machine</th><th>commit</th>"
        "<th>before (ms)</th><th>after (ms)</th><th>budget (ms)</th></tr>"
    ]
    for f in flags:
        commit = html.escape(render.short(f.commit))
        if commit_url:
            commit = f"<a href='{html.escape(commit_url + f.commit)}'>{commit}</a>"
        rows.append(
            f"<tr class='flag'><td>{f.kind}</td><td>{html.escape(f.benchmark)}</td><td>{html.escape(f.machine)}</td>"
            f"<td>{commit}</td><td>{render.ms(f.before_ms)}</td><td>{render.ms(f.after_ms)}</td>"
            f"<td>{render.ms(f.budget_ms)}</td></tr>"
        )
    return "".join(rows) + "</table>"


def plot_series(series, flags, change_points=()):
    """A matplotlib Figure: p95 and median per commit, the p95's CI, the budget line, the
    change points (dotted) and the flagged commits marked."""
    points = series.points
    x = range(len(points))
    y = [p.p95_ms for p in points]
    fig = Figure(figsize=(8, 3))
    ax = fig.add_subplot()
    ax.plot(x, y, "o-", color="#1f77b4", label="p95")
    medians = [(i, p.median_ms) for i, p in enumerate(points) if p.median_ms is not None]
    if medians:
        ax.plot([i for i, _ in medians], [m for _, m in medians], ".-", color="#7f7f7f", label="median")
    bounded = [
        (i, p)
        for i, p in enumerate(points)
        if p.ci_low_ms is not None and abs(p.ci_high_ms) != float("inf") and abs(p.ci_low_ms) != float("inf")
    ]
    if bounded:
        ax.errorbar(
            [i for i, _ in bounded],
            [p.p95_ms for _, p in bounded],
            yerr=[
                [p.p95_ms - p.ci_low_ms for _, p in bounded],
                [p.ci_high_ms - p.p95_ms for _, p in bounded],
            ],
            fmt="none",
            ecolor="#1f77b4",
            alpha=0.5,
            label="95% CI",
        )
    if series.budget_ms:
        ax.axhline(series.budget_ms, color="#b00", linestyle="--", label="budget")
    changed = [i for i, p in enumerate(points) if p.commit in set(change_points)]
    for n, i in enumerate(changed):
        ax.axvline(i - 0.5, color="#555", linestyle=":", label="change point" if n == 0 else None)
    flagged = [i for i, p in enumerate(points) if p.commit in {f.commit for f in flags}]
    for n, i in enumerate(flagged):
        ax.axvline(i, color="#b00", alpha=0.3, label="flagged" if n == 0 else None)
    if min(y) > 0 and max(y) / min(y) > 20:
        ax.set_yscale("log")
    every = max(1, len(points) // MAX_TICKS)  # label at most MAX_TICKS commits
    ax.set_xticks(list(x)[::every], [render.short(p.commit) for p in points][::every], rotation=45, fontsize=7)
    ax.set_ylabel("p95 (ms)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def svg_of(fig):
    """The figure as an inline ``<svg>`` element."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]
