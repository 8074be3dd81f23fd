"""EXP-006's results page: the seed's tables filled in from a run's report (the JSON's content).

``render_results(report, write_line)`` calls ``write_line`` once per markdown line; it reads
fields by name and computes nothing but formatting (judgments come from ``exp006_stats``).
"""

from .stats import P95_TARGET_MS

SEED_P95 = {2048: "~1 ms", 4096: "~2 ms", 8192: "~4 ms", 16384: "~8 ms"}
# (stats field, seed's row name, seed's prediction, seed's target, criterion judging the row)
EXPECTED_ROWS = (
    ("p50", "p50 (median)", "~2 ms", "< 5 ms", None),
    ("p95", "p95", "~4 ms", "< 5 ms", "p95 < 5 ms"),
    ("p99", "p99", "~6 ms", "< 10 ms", "p99 < 10 ms"),
    ("mean", "Mean", "~2.5 ms", "-", None),
    ("std", "Std Dev", "~0.5 ms", "< 20% of mean", "std < 20% of mean"),
)
ROLES = {"zero_copy": "default", "concat": "the seed's name: gather of the stored table", "gather": "a scattered table"}


def render_results(report, write_line):
    """The whole results page for ``report`` (see ``exp006.build_report`` for its fields)."""
    judged = report["judgment"]
    reference = judged["reference_context"]
    strategies = report["strategies"]
    write_line(f"# EXP-006 results: restore (block gather) time, {report['preset']}")
    write_line("")
    _run_facts(report, write_line)
    write_line("")
    write_line(f"## Expected Results: the seed's table at {reference} tokens, with the measured values")
    write_line("")
    write_line("| Metric | Predicted | Target | " + " | ".join(_title(s) for s in strategies) + " |")
    write_line("|---" * (3 + len(strategies)) + "|")
    for field, name, predicted, target, criterion in EXPECTED_ROWS:
        cells = [_expected_cell(report, s, field, criterion) for s in strategies]
        write_line(f"| {name} | {predicted} | {target} | " + " | ".join(cells) + " |")
    write_line("")
    _criteria(report, write_line)
    write_line("")
    _multi_context(report, write_line)
    write_line("")
    _verdicts(report, write_line)
    write_line("")
    _notes(report, write_line)


def _run_facts(report, write_line):
    machine, backend, versions, git = report["machine"], report["backend"], report["versions"], report["git"]
    write_line(f"- Started (UTC): {report['started_utc']}")
    write_line(f"- Command: `{report['command']}`")
    write_line(
        f"- Machine: {machine['platform']}, {machine['processor']}, {machine['cores']} cores; "
        f"load average at the end (1, 5, 15 min): {machine['load_average_at_end']}"
    )
    write_line(
        f"- MLX device: {backend['default_device']} (Metal available: {backend['metal_available']}, "
        f"CUDA available: {backend['cuda_available']}); device info: {backend['device_info']}"
    )
    write_line(
        f"- Versions: mlx {versions['mlx']}, mlx-lm {versions['mlx-lm']}, kvcache {versions['kvcache']}, "
        f"python {versions['python']}; git commit {git['commit']} (uncommitted changes: {git['dirty']})"
    )
    runs = ", ".join(f"{s} {n}" for s, n in report["runs"].items())
    write_line(f"- Timed calls per context: {runs}; {report['warmup']} untimed warm-up calls before each series")


def _criteria(report, write_line):
    judged = report["judgment"]
    half = judged["half_context"]
    write_line(f"## Validation criteria at {judged['reference_context']} tokens")
    for strategy in report["strategies"]:
        write_line("")
        write_line(f"{_title(strategy)}:")
        write_line("")
        for j in judged["strategies"][strategy]["criteria"]:
            kind = "primary" if j["primary"] else "secondary"
            write_line(f"- {j['criterion']} ({kind}): {_criterion_text(j, strategy, half)}")


def _criterion_text(j, strategy, half):
    if j["criterion"].startswith("mean-time ratio"):
        if j["value"] is None:
            return "not judged: the half context was not measured"
        if j["passed"] is None:
            return (
                f"not judged (ratio {j['value']:.2f} to {half} tokens): a zero-copy restore moves no bytes "
                "(O(1) in the bytes held); what time it takes is bookkeeping per layer and block, not copying"
            )
        return f"{_verdict_word(j['passed'])} (ratio {j['value']:.2f} to {half} tokens)"
    if j["criterion"].startswith("std"):
        return f"{_verdict_word(j['passed'])} (std is {j['value']:.1%} of the mean)"
    return f"{_verdict_word(j['passed'])} ({_ms(j['value'])})"


def _multi_context(report, write_line):
    strategies = report["strategies"]
    write_line("## Multi-Context: p95 per context")
    write_line("")
    write_line(
        "| Context | Blocks per global layer | Blocks per sliding layer | Total blocks | KV MiB restored "
        "| Seed's expected p95 | " + " | ".join(f"p95 {s}" for s in strategies) + " |"
    )
    write_line("|---" * (6 + len(strategies)) + "|")
    for context in report["contexts"]:
        rows = {r["strategy"]: r for r in report["results"] if r["context"] == context}
        first = rows[strategies[0]]
        cells = [_ms(rows[s]["stats"]["p95"]) for s in strategies]
        write_line(
            f"| {context} | {_or_dash(first['blocks_per_global_layer'])} | {_or_dash(first['blocks_per_sliding_layer'])} "
            f"| {first['blocks']} | {first['kv_bytes'] / 2**20:.0f} | {SEED_P95.get(context, '-')} | "
            + " | ".join(cells) + " |"
        )


def _verdicts(report, write_line):
    judged = report["judgment"]
    write_line(f"## Verdict at {judged['reference_context']} tokens (seed's Success Criteria)")
    write_line("")
    for strategy in report["strategies"]:
        stats = _stats(report, strategy, judged["reference_context"])
        write_line(f"- {_title(strategy)}: **{judged['strategies'][strategy]['verdict']}** (p95 {_ms(stats['p95'])})")


def _notes(report, write_line):
    write_line("## Notes")
    write_line("")
    write_line(
        "- Each sample is one `engine.reconstruct(table, strategy=...)` call timed alone with "
        "`time.perf_counter()`; `reconstruct` evaluates (`mx.eval`) what it returns."
    )
    write_line(
        "- zero_copy and concat restore the table `store` made (one contiguous run per layer); "
        "gather restores a block-per-run copy of it (`kvcache.synthetic.scattered_copy`), the table of a fragmented pool."
    )
    write_line(
        "- Calls run back to back; each returned cache is dropped unchanged (a zero-copy one is the "
        "pool's own buffers, lent: nothing was copied, nothing is freed)."
    )
    if len(set(report["runs"].values())) > 1:
        write_line(
            "- The copying strategies ran fewer timed calls (`--copy-runs`, by default min(--runs, 20)): "
            "each one copies the whole cache."
        )
    write_line("- Synthetic data: `kvcache.synthetic.random_cache` (seeded); the layout is a real prefill's, the numbers random.")


def _expected_cell(report, strategy, field, criterion):
    stats = _stats(report, strategy, report["judgment"]["reference_context"])
    text = _ms(stats[field])
    if field == "p50":
        return f"{text} {_verdict_word(stats['p50'] < P95_TARGET_MS)}"
    if criterion is None:
        return text
    j = next(j for j in report["judgment"]["strategies"][strategy]["criteria"] if j["criterion"] == criterion)
    if field == "std":
        text += f" ({j['value']:.0%})"
    return f"{text} {_verdict_word(j['passed'])}"


def _stats(report, strategy, context):
    return next(r["stats"] for r in report["results"] if r["strategy"] == strategy and r["context"] == context)


def _title(strategy):
    role = ROLES.get(strategy)
    return f"{strategy} ({role})" if role else strategy


def _or_dash(value):
    return "-" if value is None else value


def _verdict_word(passed):
    return "PASS" if passed else "FAIL"


def _ms(value):
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"
