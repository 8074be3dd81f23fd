"""EXP-006's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

- ``histogram``: the reference context's samples, one panel per strategy, with its p95 and
  the 5 ms target (log x: the strategies differ by orders of magnitude);
- ``scaling``: p50 and p95 against the context per strategy (log y).
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .stats import P95_TARGET_MS


def histogram(report, path):
    """Write the histogram of the reference context's samples to ``path`` (PNG)."""
    context = report["judgment"]["reference_context"]
    rows = [_row(report, s, context) for s in report["strategies"]]
    fig = Figure(figsize=(7, 2.6 * len(rows)), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, row in zip(np.atleast_1d(fig.subplots(len(rows), 1)), rows):
        samples = np.asarray(row["samples_ms"])
        low, high = samples.min(), samples.max()
        bins = np.geomspace(low, high, 31) if high > low else np.geomspace(low / 1.05, low * 1.05, 3)
        ax.hist(samples, bins=bins, color="tab:blue")
        ax.axvline(row["stats"]["p95"], color="tab:red", linestyle="--", label=f"p95 {row['stats']['p95']:.3g} ms")
        ax.axvline(P95_TARGET_MS, color="black", linestyle=":", label="target p95 5 ms")
        ax.set_xscale("log")
        ax.set_xlabel("restore time (ms)")
        ax.set_ylabel("calls")
        ax.set_title(f"{row['strategy']}: {len(samples)} calls at {context} tokens", fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"EXP-006: restore time, {report['preset']}, {report['backend']['default_device']}")
    fig.savefig(path, format="png", dpi=100)


def scaling(report, path):
    """Write p50/p95 restore time against context length per strategy to ``path`` (PNG)."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    contexts = report["contexts"]
    for i, strategy in enumerate(report["strategies"]):
        color = f"C{i}"
        stats = [_row(report, strategy, c)["stats"] for c in contexts]
        ax.plot(contexts, [s["p50"] for s in stats], marker="o", color=color, label=f"{strategy} p50")
        ax.plot(contexts, [s["p95"] for s in stats], marker="^", linestyle="--", color=color, label=f"{strategy} p95")
    ax.axhline(P95_TARGET_MS, color="black", linestyle=":", label="target p95 5 ms")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(contexts, [str(c) for c in contexts])
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("restore time (ms)")
    ax.set_title(f"EXP-006: restore time against context, {report['preset']}, {report['backend']['default_device']}")
    ax.legend(fontsize=8)
    fig.savefig(path, format="png", dpi=100)


def _row(report, strategy, context):
    return next(r for r in report["results"] if r["strategy"] == strategy and r["context"] == context)
