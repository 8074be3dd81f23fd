"""A/B of the engine at another commit against the working tree, in one process.

    python scripts/ab_versions.py COMMIT [--contexts 2048,32768] [--rounds 30] [--zero-copy-rounds 300] [--stub-eval]
                                         [--record FILE [--machine NAME]]

The other commit's ``kvcache`` package is unpacked (``git archive``) into a temporary folder
as ``kvcache_old`` and imported beside this tree's. For each context both engines store the
same Gemma 3 12B shaped synthetic cache and time ``store``, ``concat`` restore and zero-copy
restore, the two sides in turn in every round (each timed call after an untimed one of the
same path), so the load of a shared machine hits both alike: ``--rounds`` rounds of the
copying paths, ``--zero-copy-rounds`` of zero-copy. Prints median and p95 per side and
new / old. ``COMMIT`` = HEAD with a clean ``kvcache/`` is an A/A run: the harness's own bias.
``--stub-eval`` leaves MLX evaluation out (``engine`` and ``copying`` get an ``mx`` whose
``eval``/``async_eval`` do nothing; the only way to time an older package's Python alone):
minimum of 40 rounds of 10 calls. ``--record FILE`` also writes the results as a measurement
file for docs/measurements/ (then ``make numbers``).
"""

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time

import mlx.core as mx
import numpy as np

ROOT = __file__.rsplit("/scripts/", 1)[0]
sys.path.insert(0, ROOT)

import kvcache  # after the repository root is on the path
from kvbench.environment import environment
from kvbench.numbers import commit_line, ms_text, provenance, record_measurement


class _NoEval:
    """``mlx.core`` with ``eval`` and ``async_eval`` doing nothing."""

    def __getattr__(self, name):
        return getattr(mx, name)

    @staticmethod
    def eval(*arrays):
        pass

    @staticmethod
    def async_eval(*arrays):
        pass


def old_package(commit, folder):
    """The ``kvcache`` package of ``commit`` (or of a ``git archive COMMIT kvcache`` tar file,
    for a machine without the repository's history), imported as ``kvcache_old`` from ``folder``."""
    if commit.endswith(".tar"):
        with open(commit, "rb") as tar:
            archive = tar.read()
    else:
        archive = subprocess.run(["git", "-C", ROOT, "archive", commit, "kvcache"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", folder, "--transform", "s,^kvcache,kvcache_old,"], input=archive, check=True)
    sys.path.insert(0, folder)
    return importlib.import_module("kvcache_old")


def paths(pkg, n, stub_eval):
    """name -> fn for one package's engine holding a stored cache of ``n`` tokens."""
    spec = pkg.ModelCacheSpec.from_preset("gemma3-12b")
    live = pkg.random_cache(spec, n)
    blocks = sum(spec.blocks_needed(i, n) for i in range(spec.n_layers))  # older packages lack total_blocks_needed
    engine = pkg.BlockPoolBatchEngine(pkg.BlockPool(spec, 3 * blocks))
    engine.store("a", live)
    if stub_eval:
        pkg.engine.mx = pkg.copying.mx = _NoEval()
    return {
        "store": lambda: [engine.store("a", live).whole_run(0).keys],
        "concat": lambda: [c.keys for c in engine.reconstruct("a", strategy="concat")],
        "zero-copy": lambda: [c.keys for c in engine.reconstruct("a")],
    }


def interleaved_samples_ms(pair, rounds):
    """Single-call ms of each side of ``pair`` over ``rounds`` rounds, the sides in turn in a
    fixed order (as ``kvbench.restore_costs.interleaved_median_ms``); each timed call follows
    an untimed one of the same side. (Alternating which side goes first biased an A/A run of
    ``store``: docs/experiments/2026-11-29-store-plan-and-commit.md.)"""
    samples = {side: [] for side in pair}
    for _ in range(rounds):
        for side in pair:
            mx.eval(pair[side]())
            start = time.perf_counter()
            mx.eval(pair[side]())
            samples[side].append((time.perf_counter() - start) * 1e3)
    return samples


def interleaved_min_ms(pair, rounds=40, calls=10):
    """Minimum ms per call of each side of ``pair``, the sides timed in turn in every round."""
    best = dict.fromkeys(pair, float("inf"))
    for r in range(rounds):
        for side in sorted(pair, reverse=r % 2 == 1):
            pair[side]()
            start = time.perf_counter()
            for _ in range(calls):
                pair[side]()
            best[side] = min(best[side], (time.perf_counter() - start) / calls * 1e3)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit")
    parser.add_argument("--contexts", default="2048,32768")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--zero-copy-rounds", type=int, default=300)
    parser.add_argument("--stub-eval", action="store_true")
    parser.add_argument("--record", metavar="FILE", help="also write the results as a measurement file for docs/measurements/")
    parser.add_argument("--machine", help="the machine's name in --record's file (default: platform, cores, MLX device)")
    args = parser.parse_args()
    if args.record and not os.path.isdir(os.path.dirname(os.path.abspath(args.record))):
        parser.error(f"--record {args.record}: its folder does not exist")
    env, rows = environment(), []
    with tempfile.TemporaryDirectory() as folder:
        old = old_package(args.commit, folder)
        for n in [int(c) for c in args.contexts.split(",")]:
            sides = {"old": paths(old, n, args.stub_eval), "new": paths(kvcache, n, args.stub_eval)}
            for path in sides["new"]:
                pair = {side: fns[path] for side, fns in sides.items()}
                if args.stub_eval:
                    ms = interleaved_min_ms(pair)
                    print(f"{n} tokens | {path}: old {ms['old']:.3f} ms, new {ms['new']:.3f} ms, "
                          f"new/old {ms['new'] / ms['old']:.2f}", flush=True)
                    rows.append([str(n), path, ms_text(ms["old"]), ms_text(ms["new"]), f"{ms['new'] / ms['old']:.2f}"])
                    continue
                samples = interleaved_samples_ms(pair, args.zero_copy_rounds if path == "zero-copy" else args.rounds)
                p50 = {side: float(np.percentile(s, 50)) for side, s in samples.items()}
                p95 = {side: float(np.percentile(s, 95)) for side, s in samples.items()}
                print(f"{n} tokens | {path} ({len(samples['new'])} calls each): "
                      f"p50 old {p50['old']:.3f} new {p50['new']:.3f} ms (new/old {p50['new'] / p50['old']:.2f}); "
                      f"p95 old {p95['old']:.3f} new {p95['new']:.3f} ms (new/old {p95['new'] / p95['old']:.2f})",
                      flush=True)
                rows.append([str(n), path, f"{ms_text(p50['old'])} / {ms_text(p95['old'])}",
                             f"{ms_text(p50['new'])} / {ms_text(p95['new'])}",
                             f"{p50['new'] / p50['old']:.2f} / {p95['new'] / p95['old']:.2f}"])
            del sides
            mx.clear_cache()
    if args.record:
        record_measurement(args.record, measurement(args, env, rows))


def measurement(args, env, rows):
    """The A/B as a measurement file (kvbench/numbers.py's format): one row per context and path."""
    where = provenance(env, args.machine)
    machine = where["machine"]
    command = (f"python scripts/ab_versions.py {args.commit} --contexts {args.contexts} --rounds {args.rounds} "
               f"--zero-copy-rounds {args.zero_copy_rounds}" + (" --stub-eval" if args.stub_eval else ""))
    if args.stub_eval:
        runs = "minimum of 40 rounds of 10 calls a side, MLX evaluation stubbed out"
        columns = ["tokens", "path", "old, ms", "new, ms", "new / old"]
    else:
        runs = f"{args.rounds} calls a side ({args.zero_copy_rounds} for zero-copy), the sides in turn"
        columns = ["tokens", "path", "old p50 / p95, ms", "new p50 / p95, ms", "new / old p50 / p95"]
    return {
        "series": f"store A/B{' (Python alone)' if args.stub_eval else ''}, {machine}",
        "section": "store-ab",
        "title": f"This tree against {args.commit}{' (Python alone)' if args.stub_eval else ''}, on {machine}",
        **where, "commit": f"{commit_line(env)} against {args.commit}", "command": command, "runs": runs,
        "source": "written by scripts/ab_versions.py --record",
        "tables": [{"columns": columns, "rows": rows}],
    }


if __name__ == "__main__":
    main()
