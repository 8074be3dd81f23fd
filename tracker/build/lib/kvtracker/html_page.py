"""The p95 page of the published dashboard: ``HTML_DIR/p95.html``, linked from asv's index.

Static files, no server: ``p95.html`` (the overview table, then one section per series in
the table's order) and ``p95/`` beside it: ``data.js`` (the plots' data, ``window.P95_DATA``),
and copies of ``tracker/kvtracker/page/``'s scripts (``p95.js`` loads uPlot, vendored there
with its licence, and data.js after the first frame, and draws the plots); the styles are
inline. Only these are (re)written. The table and the commit lists are
plain HTML, readable without scripts; the plots are drawn as they scroll into view.

The page names ``p95.js`` and ``data.js`` with ``?v=`` and the first hex digits of their
contents' sha256: a cache (the browser's, GitHub Pages') cannot pair a new page with an old
data.js, whose series would be drawn under another section's heading.
"""

import hashlib
import html
import json
import os
import shutil
import time

import numpy as np

from .atomic import write_text_atomically
from . import overview, render

PAGE = "p95.html"
ASSETS = "p95"
HERE = os.path.join(os.path.dirname(__file__), "page")
ASSET_FILES = ("uPlot.iife.min.js", "uPlot-LICENSE", "p95.js")  # copied into p95/
INLINE_CSS = ("uPlot.min.css", "p95.css")  # in the page: no request before the first paint
SPARK_WIDTH, SPARK_HEIGHT, SPARK_POINTS = 120, 22, 60
NAMED = {  # what the commit a row names is, by the row's status
    "regression": "the flagged commit: its new level starts here",
    "over budget": "over the budget from this commit on",
    "tentative": "a new level starts here, not yet held by enough commits",
    "ok": "the last change point (or the newest commit)",
}
NAV_ITEM = f'<li id="nav-li-p95"><a href="{PAGE}">p95</a></li>'
NAV_ANCHOR = '<li id="nav-li-regressions"><a href="#/regressions">Regressions</a></li>'


def write_page(html_dir, all_series, analysis, flags, dismissed, commit_url):
    """Write the page and its files; returns the page's path. ``flags``: the confirmed flags
    left after dismissals; ``dismissed``: the ones a re-measurement dismissed."""
    rows = overview.rows(all_series, analysis, flags)
    marks = _marks(analysis, flags, dismissed)
    commits = sorted({(p.date, p.commit) for s in all_series for p in s.points})
    position = {commit: i for i, (_, commit) in enumerate(commits)}
    assets = os.path.join(html_dir, ASSETS)
    os.makedirs(assets, exist_ok=True)
    for name in ASSET_FILES:
        shutil.copyfile(os.path.join(HERE, name), os.path.join(assets, name))
    data = {
        "commitUrl": commit_url,
        "commits": [c for _, c in commits],
        "dates": [d for d, _ in commits],
        "series": [_series_data(r, analysis, marks.get(r.key, {}), position) for r in rows],
    }
    data_js = "window.P95_DATA = " + json.dumps(data, separators=(",", ":"), allow_nan=False) + ";\n"
    write_text_atomically(os.path.join(assets, "data.js"), data_js)
    with open(os.path.join(HERE, "p95.js"), "rb") as f:
        script = f"{ASSETS}/p95.js?v={version(f.read())}"
    data_url = f"{ASSETS}/data.js?v={version(data_js.encode())}"
    machines = sorted({s.machine for s in all_series})
    page = _page(rows, marks, machines, commit_url, script, data_url)
    path = os.path.join(html_dir, PAGE)
    write_text_atomically(path, page)  # a page being served is never seen cut off
    return path


def version(content):
    """The cache-buster of a file's URL: the first 12 hex digits of its sha256."""
    return hashlib.sha256(content).hexdigest()[:12]


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
    write_text_atomically(index, text.replace(NAV_ANCHOR, NAV_ANCHOR + "\n\t" + NAV_ITEM, 1))  # asv's page: never cut off
    return True


def _marks(analysis, flags, dismissed):
    """``{series key: {commit: [what, ...]}}``: change points, flags, tentative and dismissed ones."""
    marks = {}
    for key, commits in analysis.change_points.items():
        for commit in commits:
            marks.setdefault(key, {}).setdefault(commit, []).append("change point")
    for kind, found in (("flag", flags), ("tentative", analysis.tentative), ("dismissed", dismissed)):
        for f in found:
            what = f"{f.kind} {f.change:+.0%}" if f.kind == "regression" else f"over the {render.ms(f.budget_ms)} budget"
            what = what if kind == "flag" else f"{kind} {what}"
            marks.setdefault((f.benchmark, f.machine, f.env), {}).setdefault(f.commit, []).append(what)
    return marks


def _mark_kind(whats):
    """The strongest of a commit's marks, as p95.js colours them."""
    for word in ("regression", "over the", "tentative", "dismissed"):
        if any(w.startswith(word) for w in whats):
            return {"over the": "budget"}.get(word, word)
    return "change"


def _series_data(row, analysis, marks, position):
    s = row.series
    index = {p.commit: i for i, p in enumerate(s.points)}
    label, factor = shown = _shown(s)
    scaled = lambda value: _round(value * factor if value is not None else None)  # noqa: E731
    return {
        "name": overview.readable_name(s.benchmark),
        "unit": label,
        "statistic": s.statistic,
        "threshold": s.threshold,
        "budget": scaled(s.budget_ms) if shown[0] in dict(render.TIME_UNITS) else None,
        "x": [position[p.commit] for p in s.points],
        "p95": [scaled(p.p95) for p in s.points],
        "median": [scaled(p.median) for p in s.points],
        "low": [scaled(p.ci_low) for p in s.points],
        "high": [scaled(p.ci_high) for p in s.points],
        "ref": [[index[commit], scaled(level)] for commit, level in analysis.references[row.key]],
        "marks": sorted([index[c], _mark_kind(whats)] for c, whats in marks.items() if c in index),
    }


def _shown(series):
    """How the series' values are shown (``render.display_unit``)."""
    return render.display_unit(series.unit, [p.p95 for p in series.points])


def _round(value):
    """4 significant digits; None for none, infinity or NaN (a gap in the plot)."""
    if value is None or not np.isfinite(value):
        return None
    return float(f"{value:.4g}")


def _page(rows, marks, machines, commit_url, script, data_url):
    counts = {status: sum(1 for r in rows if r.status == status) for status in overview.STATUSES}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n) + f" of {len(rows)} series."
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'><title>p95 per commit</title>",
        f"<style>{_inline_css()}</style>",
        f"<script defer src='{script}' data-p95-data='{data_url}'></script></head><body>",  # it loads uPlot and data.js
        "<p><a href='index.html'>&larr; dashboard</a></p>",
        f"<h1>p95 per commit</h1><p class='summary'>{html.escape(summary)}",
        _machine_picker(machines),
        "</p>",
        _overview_table(rows, commit_url),
        f"<p class='rule'>Regression: a new p95 (or median) level more than its series' threshold ({_thresholds(rows)}) above "
        "the reference level, found by change-point detection and held by enough later commits, and still holding now. Over budget: "
        "the newest p95s over the budget (<code>benchmarks/budgets.json</code>). Tentative: a new level not yet held by "
        "enough commits. Rules: <code>tracker/kvtracker/detect.py</code>, <code>overview.py</code>.</p>",
    ]
    for n, row in enumerate(rows):
        parts.append(_section(n, row, marks.get(row.key, {}), commit_url))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _thresholds(rows):
    """The series' thresholds in a few words: "10%", or "10% or 1%"."""
    found = sorted({r.series.threshold for r in rows}, reverse=True)
    return " or ".join(f"{t:.0%}" if t >= 0.01 else f"{t:.1%}" for t in found) or "-"


def _inline_css():
    parts = []
    for name in INLINE_CSS:
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)


def _machine_picker(machines):
    """A ``<select>`` of the machines; nothing with one machine."""
    if len(machines) < 2:
        return ""
    options = "".join(f"<option value='{html.escape(m)}'>{html.escape(m)}</option>" for m in machines)
    return f" <label>machine <select id='machine'><option value=''>all</option>{options}</select></label>"


def _overview_table(rows, commit_url):
    head = (
        "<table id='overview'><thead><tr><th>status</th><th>benchmark</th><th>machine</th><th>commit</th>"
        "<th>now [95% CI]</th><th>since last change point</th><th>vs budget</th><th>history</th></tr></thead><tbody>"
    )
    body = []
    for n, r in enumerate(rows):
        s, last = r.series, r.series.points[-1]
        change = f" <span class='change'>{_percent(r.change)}</span>" if r.status != "ok" else ""
        date = _date(next(p.date for p in s.points if p.commit == r.commit))
        body.append(
            f"<tr class='{r.status.replace(' ', '-')}' data-machine='{html.escape(s.machine)}'>"
            f"<td class='status'>{r.status}{change}</td>"
            f"<td><a href='#s{n}' title='{html.escape(s.benchmark)}'>{html.escape(overview.readable_name(s.benchmark))}</a></td>"
            f"<td>{html.escape(s.machine)}</td>"
            f"<td title='{NAMED[r.status]}'>{_commit_link(r.commit, commit_url)} {date}</td>"
            f"<td>{s.statistic} {render.amount(last.p95, _shown(s))} {render.ci(last.ci_low, last.ci_high, _shown(s))}</td>"
            f"<td>{_percent(r.since_change_point)}</td><td>{_percent(r.vs_budget)}</td>"
            f"<td>{_sparkline([p.p95 for p in s.points], s.budget_ms)}</td></tr>"
        )
    return head + "".join(body) + "</tbody></table>"


def _section(n, row, marks, commit_url):
    s = row.series
    about = [f"machine {html.escape(s.machine)}", f"env {html.escape(s.env)}", f"{len(s.points)} commits"]
    if s.budget_ms:
        about.append(f"budget {render.ms(s.budget_ms)}")
    index = {p.commit: p for p in s.points}
    listed = [(c, whats) for c, whats in marks.items() if c in index] + [(s.points[-1].commit, ["newest"])]
    order = {p.commit: i for i, p in enumerate(s.points)}
    lines = "".join(
        f"<tr><td>{_commit_link(c, commit_url)}</td><td>{_date(index[c].date)}</td>"
        f"<td>{html.escape(', '.join(whats))}</td><td>{render.amount(index[c].p95, _shown(s))}</td></tr>"
        for c, whats in sorted(listed, key=lambda item: order[item[0]])
    )
    return (
        f"<section id='s{n}' data-machine='{html.escape(s.machine)}'>"
        f"<h2>{html.escape(overview.readable_name(s.benchmark))} <span class='status {row.status.replace(' ', '-')}'>{row.status}</span></h2>"
        f"<p class='about'><code>{html.escape(s.benchmark)}</code>, {', '.join(about)}. Band: the reference level to "
        f"{s.threshold:.0%} above it (the alert threshold).</p>"
        f"<div class='chart' data-series='{n}'></div>"
        f"<table class='commits'><tr><th>commit</th><th>date</th><th>what</th><th>{s.statistic}</th></tr>{lines}</table></section>"
    )


def _commit_link(commit, commit_url):
    short = html.escape(render.short(commit))
    if not commit_url:
        return f"<code>{short}</code>"
    return f"<a class='commit' href='{html.escape(commit_url + commit)}'><code>{short}</code></a>"


def _date(ms):
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000)) if ms else "-"


def _percent(change):
    return "-" if change is None or change != change else f"{change:+.0%}"


def _sparkline(values, budget_ms):
    """An inline SVG of the p95 history: at most SPARK_POINTS medians of equal stretches."""
    finite = np.asarray([v if v is not None and np.isfinite(v) else np.nan for v in values], dtype=float)
    if np.all(np.isnan(finite)):
        return ""
    chunks = np.array_split(finite, min(SPARK_POINTS, len(finite)))
    ys = np.array([np.nanmedian(c) if np.any(~np.isnan(c)) else np.nan for c in chunks])
    ys = ys[~np.isnan(ys)]
    low, high = float(np.min(ys)), float(np.max(ys))
    span = (high - low) or 1.0
    step = SPARK_WIDTH / max(len(ys) - 1, 1)
    path = " ".join(f"{i * step:.1f},{SPARK_HEIGHT - 1 - (y - low) / span * (SPARK_HEIGHT - 2):.1f}" for i, y in enumerate(ys))
    over = "" if not budget_ms or high <= budget_ms else " over"
    return (
        f"<svg class='spark{over}' role='img' aria-label='p95 per commit' width='{SPARK_WIDTH}' height='{SPARK_HEIGHT}'>"
        f"<polyline points='{path}'/></svg>"
    )
