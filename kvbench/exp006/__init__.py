"""``kvcache-bench exp006``: EXP-006 (block gather / restore time) run through the library.

For each context and strategy, ``exp006_measure`` times single ``engine.reconstruct`` calls;
``exp006_stats`` summarizes and judges them by the seed's criteria; this module writes into
``--out``: ``exp_006_timings.json`` (every sample, statistics, judgments, machine, versions),
``EXP-006-results.md`` (the seed's tables filled in), ``exp_006_histogram.png`` and
``exp_006_scaling.png``; with ``--record FILE`` also the run as a measurement file for
docs/measurements/. Every file is written whole or not at all; an earlier run's results
are kept unless ``--overwrite`` is given.

Runs with only mlx, mlx-lm, numpy and matplotlib importable (``python3 -m kvbench.cli exp006``).
"""

import json
import os
from pathlib import Path

import mlx.core as mx

import kvcache

from . import plots as exp006_plots
from ..errors import UserError
from ..environment import environment, load_average
from ..measurement import record_measurement
from .measure import measure_context
from .record import measurement
from .report import render_results
from .stats import COPYING_STRATEGIES, judge, reference_contexts, summarize, verdict

DEFAULT_STRATEGIES = ("zero_copy", "concat")
DEFAULT_CONTEXTS = "2048,4096,8192,16384"
COPY_RUNS_CAP = 20
TIMINGS, RESULTS, HISTOGRAM, SCALING = (
    "exp_006_timings.json", "EXP-006-results.md", "exp_006_histogram.png", "exp_006_scaling.png",
)


def register(subparsers):
    parser = subparsers.add_parser("exp006", help="EXP-006: time cache restores per strategy and context")
    parser.add_argument("--runs", type=int, default=100, help="timed calls per context for zero_copy (default 100)")
    parser.add_argument(
        "--copy-runs", type=int, default=None,
        help=f"timed calls per context for the copying strategies (default: min(--runs, {COPY_RUNS_CAP}))",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before each series (default 3)")
    parser.add_argument("--contexts", default=DEFAULT_CONTEXTS, help=f"comma-separated token counts ({DEFAULT_CONTEXTS})")
    parser.add_argument(
        "--strategy", nargs="+", action="extend", metavar="NAME",
        help=f"restore strategies to time, of {', '.join(kvcache.STRATEGIES)} (default: {' '.join(DEFAULT_STRATEGIES)})",
    )
    parser.add_argument("--preset", default="gemma3-12b", help="model cache shape (default gemma3-12b)")
    parser.add_argument("--out", default="out/exp006", help="folder for the results (default out/exp006)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
    parser.add_argument(
        "--record", metavar="FILE",
        help="also write the run as a measurement file for docs/measurements/ (then `make numbers`)",
    )
    parser.add_argument(
        "--record-machine", metavar="NAME",
        help="the machine's name in --record's file, e.g. 'NVIDIA H100' (default: platform, cores, MLX device)",
    )
    parser.set_defaults(func=run)


def run(args):
    spec, contexts, strategies, plan, out = _checked(args)
    command = _command(args, contexts, strategies, plan, out)
    env = environment()
    progress = lambda line: print(f"exp006: {line}", flush=True)  # noqa: E731
    progress(f"{args.preset}, contexts {contexts}, timed calls {plan}, MLX device {mx.default_device()}")
    measured = {}
    for n in contexts:
        measured[n] = measure_context(spec, n, plan, args.warmup, progress)
        mx.clear_cache()
    report = build_report(spec, args.preset, contexts, strategies, plan, args.warmup, measured, command, env)
    write_outputs(report, out)
    if args.record:
        record_measurement(args.record, measurement(report, args.record_machine), progress)
    for strategy, judged in report["judgment"]["strategies"].items():
        progress(f"verdict at {report['judgment']['reference_context']} tokens: {strategy}: {judged['verdict']}")
    progress(f"wrote {', '.join(str(out / name) for name in (TIMINGS, RESULTS, HISTOGRAM, SCALING))}")
    return 0


def build_report(spec, preset, contexts, strategies, plan, warmup, measured, command, env):
    """Everything the JSON holds: run facts, ``env`` (``environment()`` taken at the start) with
    the load average at the end, every sample with its statistics, judgments."""
    results = []
    for n in contexts:
        for strategy in strategies:
            m = measured[n][strategy]
            results.append({
                "strategy": strategy, "context": n, "table": m["table"],
                "blocks": m["blocks"], "kv_bytes": m["kv_bytes"],
                "blocks_per_global_layer": _blocks_per_layer(spec, n, sliding=False),
                "blocks_per_sliding_layer": _blocks_per_layer(spec, n, sliding=True),
                "samples_ms": m["samples_ms"], "stats": summarize(m["samples_ms"]),
            })
    reference, half = reference_contexts(contexts)
    judged = {}
    for strategy in strategies:
        stats = _stats(results, strategy, reference)
        criteria = judge(stats, _stats(results, strategy, half) if half else None, strategy)
        judged[strategy] = {"criteria": criteria, "verdict": verdict(stats, criteria)}
    return {
        "experiment": "EXP-006",
        "command": command,
        "preset": preset,
        "spec": {
            "n_layers": spec.n_layers, "layer_types": spec.layer_types, "n_kv_heads": spec.n_kv_heads,
            "k_head_dim": spec.k_head_dim, "v_head_dim": spec.v_head_dim, "dtype": str(spec.dtype),
            "block_tokens": spec.block_tokens,
        },
        "contexts": contexts,
        "strategies": strategies,
        "default_strategy": "zero_copy",
        "baseline_strategy": "concat",
        "runs": plan,
        "warmup": warmup,
        **env,
        "machine": {**env["machine"], "load_average_at_end": load_average()},
        "results": results,
        "judgment": {"reference_context": reference, "half_context": half, "strategies": judged},
    }


def write_outputs(report, out):
    """Write the four result files into ``out``, each replaced whole (never half-written)."""
    lines = []
    render_results(report, lines.append)
    _write_whole(out / TIMINGS, lambda path: path.write_text(json.dumps(report, indent=1) + "\n"))
    _write_whole(out / RESULTS, lambda path: path.write_text("\n".join(lines) + "\n"))
    _write_whole(out / HISTOGRAM, lambda path: exp006_plots.histogram(report, path))
    _write_whole(out / SCALING, lambda path: exp006_plots.scaling(report, path))


def _checked(args):
    """The arguments, checked before anything is measured: ``(spec, contexts, strategies, plan, out)``."""
    try:
        spec = kvcache.ModelCacheSpec.from_preset(args.preset)
    except kvcache.SpecError as error:
        raise UserError(f"--preset: {error}") from None
    contexts = _contexts(args.contexts)
    strategies = list(dict.fromkeys(args.strategy or DEFAULT_STRATEGIES))
    unknown = [s for s in strategies if s not in kvcache.STRATEGIES]
    if unknown:
        raise UserError(f"--strategy {unknown[0]!r} is not a restore strategy: choose from {', '.join(kvcache.STRATEGIES)}")
    copy_runs = min(args.runs, COPY_RUNS_CAP) if args.copy_runs is None else args.copy_runs
    for name, value, least in (("--runs", args.runs, 1), ("--copy-runs", copy_runs, 1), ("--warmup", args.warmup, 0)):
        if value < least:
            raise UserError(f"{name} {value}: give a whole number >= {least}")
    plan = {s: copy_runs if s in COPYING_STRATEGIES else args.runs for s in strategies}
    out = Path(args.out)
    if args.record and not Path(args.record).resolve().parent.is_dir():
        raise UserError(f"--record {args.record}: its folder does not exist")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder for the results")
    if (out / TIMINGS).exists() and not args.overwrite:
        raise UserError(f"--out {out} already holds an earlier run's {TIMINGS}: pass --overwrite or another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {out}: cannot make the folder ({error.strerror})") from None
    return spec, contexts, strategies, plan, out


def _contexts(text):
    try:
        contexts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise UserError(f"--contexts {text!r}: give comma-separated token counts, like {DEFAULT_CONTEXTS}") from None
    if contexts[0] < 1:
        raise UserError(f"--contexts {text!r}: every context must be at least 1 token")
    return contexts


def _command(args, contexts, strategies, plan, out):
    copy_runs = next((plan[s] for s in strategies if s in COPYING_STRATEGIES), None)
    parts = [
        "kvcache-bench exp006", f"--preset {args.preset}", f"--contexts {','.join(map(str, contexts))}",
        f"--strategy {' '.join(strategies)}", f"--runs {args.runs}",
        f"--copy-runs {copy_runs}" if copy_runs else "", f"--warmup {args.warmup}", f"--out {out}",
    ]
    return " ".join(p for p in parts if p)


def _blocks_per_layer(spec, n, sliding):
    layer_id = next((i for i, layer in enumerate(spec.layers) if layer.is_sliding == sliding), None)
    return None if layer_id is None else spec.blocks_needed(layer_id, n)


def _stats(results, strategy, context):
    return next(r["stats"] for r in results if r["strategy"] == strategy and r["context"] == context)


def _write_whole(path, write):
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
