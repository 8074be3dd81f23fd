"""``kvcache-bench costs``: what restore and store cost, as ratios to a plain copy.

For each context length, with a synthetic cache of a preset's shape (``kvcache.synthetic.random_cache``):

- copy efficiency of every path that must copy (``concat``, ``gather`` of a block-per-run
  table, ``store`` of a live cache): plain-copy time / path time, where the plain copy is
  MLX copying the same bytes (``mx.array`` of each array, evaluated together), timed in
  turn with the paths in every round. ``concat``'s reference is the stored runs, ``store``'s
  the live cache's arrays; ``gather`` of a block-per-run table is given against both the
  stored runs (contiguous memory) and the table's own block buffers (the same buffers it
  reads: one per block, each a separate allocation). ``store`` is also split into its copies
  (the very ``copy_jobs`` call a store makes, alone) and the rest, its bookkeeping in ms
  (checks, plan, allocation, table, freeing): a fixed cost per store, not per byte;
- zero-copy restore p50 / p95 over many single calls;
- the first decode step's cache work (``update_and_fetch`` on every layer) after a zero-copy
  restore, over the same after a native prefill (mlx-lm's capacity rounding: at a multiple of
  256 tokens a native cache is full, and its first step copies every global layer);
- MLX peak memory a restore adds, over the bytes it restores;
- parking again after a turn that outgrew the blocks: restore zero-copy, append tokens until
  mlx-lm grows the global layers, store (which adopts the grown buffers) — against ``store``.

Computing (``measure``) is kept apart from rendering (``render``); times are medians.
"""

import json
import os
import statistics
import time

import mlx.core as mx
import numpy as np

import kvcache
import kvcache.synthetic
from kvcache.mlx_lm_caches import arrays, private_copy
from kvcache.copying import copy_jobs

from .errors import UserError
from .environment import environment
from .measurement import provenance, record_measurement


def register(subparsers):
    parser = subparsers.add_parser("costs", help="restore/store copy efficiency, zero-copy latency, first decode step")
    parser.add_argument("--preset", default="gemma3-12b")
    parser.add_argument("--contexts", default="2048,8192,32768", help="comma-separated token counts")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each copying path")
    parser.add_argument("--zero-copy-runs", type=int, default=200)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--record", metavar="FILE", help="also write the table as a measurement file for docs/measurements/")
    parser.add_argument("--record-machine", metavar="NAME", help="the machine's name in --record's file (default: platform, cores, MLX device)")
    parser.set_defaults(func=run)


def run(args):
    try:
        contexts = [int(c) for c in args.contexts.split(",")]
        spec = kvcache.ModelCacheSpec.from_preset(args.preset)
    except (ValueError, kvcache.SpecError) as error:
        raise UserError(f"bad --contexts or --preset: {error}") from None
    if args.runs < 1 or args.zero_copy_runs < 1 or min(contexts) < 1:
        raise UserError("--runs, --zero-copy-runs and every context must be >= 1")
    for option, path in (("--json", args.json), ("--record", args.record)):
        if path:
            _check_writable(option, path)  # before minutes of measuring, not after
    env, rows = environment(), []
    for n in contexts:
        print(f"measuring {args.preset} at {n} tokens ...", flush=True)
        rows.append(measure(spec, n, args.runs, args.zero_copy_runs))
    result = {"preset": args.preset, "device": str(mx.default_device()), "mlx": mx.__version__,
              "runs": args.runs, "zero_copy_runs": args.zero_copy_runs, "rows": rows}
    render(result, print)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.record:
        record_measurement(args.record, measurement(args, env, result))
    return 0


def _check_writable(option, path):
    """Raise UserError unless ``path`` can be written as a file: not a folder, in a writable folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        problem = "is a folder"
    elif not os.path.isdir(folder):
        problem = "its folder does not exist"
    elif not os.access(folder, os.W_OK):
        problem = "its folder is not writable"
    elif os.path.exists(path) and not os.access(path, os.W_OK):
        problem = "is not writable"
    else:
        return
    raise UserError(f"{option} {path}: {problem}: name a file in an existing folder you can write to")


def measurement(args, env, result):
    """``result`` as a measurement file for docs/measurements/ (kvbench/measurement.py's format)."""
    where = provenance(env, args.record_machine)
    machine = where["machine"]
    columns, rows = table(result)
    return {
        "series": f"costs, {machine}", "section": "costs",
        "title": f"Copy efficiency and store costs on {machine}", **where,
        "command": (f"kvcache-bench costs --preset {args.preset} --contexts {args.contexts} --runs {args.runs} "
                    f"--zero-copy-runs {args.zero_copy_runs}"),
        "runs": f"medians of {args.runs} rounds, zero-copy over {args.zero_copy_runs} calls",
        "source": "written by kvcache-bench costs --record",
        "note": "eff: plain-copy time / path time",
        "tables": [{"columns": columns, "rows": rows}],
    }


def measure(spec, n, runs, zero_copy_runs):
    """One row of the table for a context of ``n`` tokens (see module docstring)."""
    pool = kvcache.BlockPool(spec, 3 * spec.total_blocks_needed(n))  # stored + scattered copy + a re-store in flight
    engine = kvcache.BlockPoolBatchEngine(pool)
    live = kvcache.synthetic.random_cache(spec, n)
    stored = engine.store("agent", live)
    scattered = kvcache.synthetic.scattered_copy(pool, stored, "scattered")
    runs_arrays = [a for i in range(spec.n_layers) for a in (stored.whole_run(i).keys, stored.whole_run(i).values)]
    scattered_arrays = [a for b in scattered.all_blocks() for a in (b.run.keys, b.run.values)]
    live_arrays = arrays(live)
    store_jobs = engine.plan_store("agent", live).copy_jobs()  # the very copies a store of ``live`` makes
    restored_bytes = sum(a.nbytes for a in runs_arrays)

    ms = interleaved_median_ms({
        "plain_copy": lambda: [mx.array(a) for a in runs_arrays],
        "concat": lambda: _arrays(engine.reconstruct("agent", strategy="concat")),
        "plain_copy_of_scattered": lambda: [mx.array(a) for a in scattered_arrays],
        "gather": lambda: _arrays(engine.reconstruct(scattered, strategy="gather")),
        "plain_copy_of_live": lambda: [mx.array(a) for a in live_arrays],
        "store_copies": lambda: copy_jobs(store_jobs),
        "store": lambda: _store_again(engine, live),
    }, runs)
    row = {"context": n, "restored_mib": restored_bytes / 2**20, "scattered_buffers": len(scattered_arrays)}
    row.update({f"{name}_ms": value for name, value in ms.items()})
    row["concat_efficiency"] = row["plain_copy_ms"] / row["concat_ms"]
    row["gather_efficiency"] = row["plain_copy_ms"] / row["gather_ms"]
    row["gather_same_buffers_efficiency"] = row["plain_copy_of_scattered_ms"] / row["gather_ms"]
    row["store_efficiency"] = row["plain_copy_of_live_ms"] / row["store_ms"]
    row["store_copies_efficiency"] = row["plain_copy_of_live_ms"] / row["store_copies_ms"]
    row["store_bookkeeping_ms"] = row["store_ms"] - row["store_copies_ms"]

    zero = [_seconds(lambda: _arrays(engine.reconstruct("agent"))) * 1e3 for _ in range(zero_copy_runs)]
    row["zero_copy_p50_ms"] = float(np.percentile(zero, 50))
    row["zero_copy_p95_ms"] = float(np.percentile(zero, 95))

    row["zero_copy_peak_fraction"] = _peak_added(lambda: engine.reconstruct("agent")) / restored_bytes
    row["concat_peak_fraction"] = _peak_added(lambda: engine.reconstruct("agent", strategy="concat")) / restored_bytes
    row["first_step_ratio"] = _first_step_ratio(engine, spec, live, runs)
    row["park_after_growth_ms"] = _park_after_growth_ms(engine, spec, live)
    return row


COLUMNS = [
    "context", "MiB", "plain copy ms", "concat ms (eff)", "plain copy of the scattered buffers ms",
    "gather ms (eff vs plain copy / vs scattered buffers)", "store ms (eff; its copies' eff)", "store bookkeeping ms",
    "zero-copy p50 / p95 ms", "first step restored/native", "peak added zero-copy / concat", "park after growth ms",
]


def table(result):
    """``(COLUMNS, rows)``: one row of cell strings per context."""
    return COLUMNS, [[
        f"{r['context']}", f"{r['restored_mib']:.0f}", f"{r['plain_copy_ms']:.1f}",
        f"{r['concat_ms']:.1f} ({r['concat_efficiency']:.0%})", f"{r['plain_copy_of_scattered_ms']:.1f}",
        f"{r['gather_ms']:.1f} ({r['gather_efficiency']:.0%} / {r['gather_same_buffers_efficiency']:.0%})",
        f"{r['store_ms']:.1f} ({r['store_efficiency']:.0%}; {r['store_copies_efficiency']:.0%})",
        f"{r['store_bookkeeping_ms']:.2f}",
        f"{r['zero_copy_p50_ms']:.3f} / {r['zero_copy_p95_ms']:.3f}", f"{r['first_step_ratio']:.2f}",
        f"{r['zero_copy_peak_fraction']:.1%} / {r['concat_peak_fraction']:.0%}", f"{r['park_after_growth_ms']:.2f}",
    ] for r in result["rows"]]


def render(result, write_line):
    """The result as a markdown table, one ``write_line`` call per line."""
    write_line(f"\n{result['preset']} on {result['device']} (MLX {result['mlx']}); medians of "
               f"{result['runs']} runs, zero-copy over {result['zero_copy_runs']} calls")
    columns, rows = table(result)
    write_line("| " + " | ".join(columns) + " |")
    write_line("|" + "---|" * len(columns))
    for row in rows:
        write_line("| " + " | ".join(row) + " |")


def _store_again(engine, live):
    table = engine.store("agent", live)
    return [table.whole_run(0).keys]


def _first_step_ratio(engine, spec, live, runs):
    """Median first-step time after a zero-copy restore over that after a native prefill."""
    restored, native = [], []
    for i in range(runs):
        engine.store("agent", live)  # re-park: the previous restore advanced and is replaced
        cache = engine.reconstruct("agent")
        restored.append(_seconds(lambda: _decode_step(spec, cache)))
        fresh = _native_copy(live)
        native.append(_seconds(lambda: _decode_step(spec, fresh)))
    return statistics.median(restored) / statistics.median(native)


def _park_after_growth_ms(engine, spec, live):
    """Time to store a restored cache whose global layers mlx-lm just grew past their runs."""
    engine.store("agent", live)
    cache = engine.reconstruct("agent")
    table = engine.agent_blocks("agent")
    room = table.whole_run(spec.layer_types.index("global")).capacity
    k_shape, v_shape = spec.kv_shape(1)
    k, v = mx.ones(k_shape, spec.dtype), mx.ones(v_shape, spec.dtype)
    for _ in range(room - table.total_tokens + 1):
        for c in cache:
            c.update_and_fetch(k, v)
        mx.eval(_arrays(cache))
    return _seconds(lambda: [engine.store("agent", cache).whole_run(0).keys]) * 1e3


def _native_copy(live):
    """A cache laid out like ``live`` whose arrays only it holds (as after a real prefill)."""
    fresh = private_copy(live)
    mx.eval(_arrays(fresh))
    return fresh


def _decode_step(spec, cache):
    """The cache's share of one decode step: append one token's keys and values to every layer.

    Attention is left out: it reads the same bytes after either kind of restore, and on a CPU
    it would hide a whole-layer copy behind its own cost.
    """
    k_shape, v_shape = spec.kv_shape(1)
    k, v = mx.ones(k_shape, spec.dtype), mx.ones(v_shape, spec.dtype)
    for c in cache:
        c.update_and_fetch(k, v)
    return _arrays(cache)


def _peak_added(restore):
    mx.synchronize()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    cache = restore()
    added = max(0, mx.get_peak_memory() - base)  # the peak restarts from 0, not from base
    del cache
    return added


def _arrays(cache):
    return arrays(cache)


def _seconds(fn):
    start = time.perf_counter()
    mx.eval(fn())
    return time.perf_counter() - start


def interleaved_median_ms(paths, runs):
    """Median ms of each of ``paths`` (name -> fn) over ``runs`` rounds. Each round times every
    path once in turn, so a change of the machine's load hits every path alike; each timed
    call follows an untimed one of the same path, so MLX's buffer cache holds that path's
    sizes (as in a steady state) rather than the previous path's."""
    times = {name: [] for name in paths}
    for _ in range(runs):
        for name, fn in paths.items():
            _seconds(fn)  # warm-up: this path's buffer sizes in MLX's cache
            times[name].append(_seconds(fn))
    return {name: statistics.median(samples) * 1e3 for name, samples in times.items()}
