"""An EXP-006 run as a measurement file for docs/measurements/ (the format: kvbench/measurement.py)."""

from ..measurement import ms_text, provenance


def measurement(report, machine=None):
    """The measurement of ``report`` (``build_report``'s answer): p50 / p95 per context and
    strategy, and the verdicts. ``machine`` names the machine (and so the series); by default
    the line ``machine_line`` makes of the run's environment."""
    where = provenance(report, machine)
    machine = where["machine"]
    strategies, judged = report["strategies"], report["judgment"]
    stats = {(r["strategy"], r["context"]): r["stats"] for r in report["results"]}
    rows = [[context_label(n)] + [f"{ms_text(stats[s, n]['p50'])} / {ms_text(stats[s, n]['p95'])}" for s in strategies]
            for n in report["contexts"]]
    runs = ", ".join(f"{report['runs'][s]} timed calls of {s}" for s in strategies)
    return {
        "series": f"EXP-006 restore, {machine}",
        "section": "restore",
        "title": f"EXP-006 on {machine}",
        **where,
        "command": report["command"],
        "runs": f"per context {runs}; {report['warmup']} untimed first",
        "source": f"written by kvcache-bench exp006 --record ({report['preset']}; load average at the end "
                  f"{report['machine']['load_average_at_end']})",
        "tables": [
            {"caption": "p50 / p95 per context, ms", "columns": ["context", *strategies], "rows": rows},
            {"caption": f"verdict at {context_label(judged['reference_context'])}", "columns": list(strategies),
             "rows": [[judged["strategies"][s]["verdict"] for s in strategies]]},
        ],
    }


def context_label(tokens):
    """8192 -> '8K'; a count that is not a whole number of K stays as it is."""
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else str(tokens)
