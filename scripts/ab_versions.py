"""A/B of the engine at another commit against the working tree, in one process.

    python scripts/ab_versions.py COMMIT [--contexts 2048,32768] [--stub-eval]

The other commit's ``kvcache`` package is unpacked (``git archive``) into a temporary folder
as ``kvcache_old`` and imported beside this tree's. For each context both engines store the
same Gemma 3 12B shaped synthetic cache and time ``store``, ``concat`` restore and zero-copy
restore in turn (``kvbench.restore_costs.interleaved_median_ms``, 30 rounds), so the load of a
shared machine hits both alike. ``--stub-eval`` leaves MLX evaluation out (``engine`` and
``copying`` get an ``mx`` whose ``eval``/``async_eval`` do nothing): the Python alone, minimum
of 40 rounds of 10 calls. Prints new / old per path.
"""

import argparse
import importlib
import subprocess
import sys
import tempfile
import time

import mlx.core as mx

ROOT = __file__.rsplit("/scripts/", 1)[0]
sys.path.insert(0, ROOT)

import kvcache  # after the repository root is on the path
from kvbench.restore_costs import interleaved_median_ms


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
    """The ``kvcache`` package of ``commit``, imported as ``kvcache_old`` from ``folder``."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", commit, "kvcache"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", folder, "--transform", "s,^kvcache,kvcache_old,"],
                   input=archive.stdout, check=True)
    sys.path.insert(0, folder)
    return importlib.import_module("kvcache_old")


def paths(pkg, n, stub_eval):
    """name -> fn for one package's engine holding a stored cache of ``n`` tokens."""
    spec = pkg.ModelCacheSpec.from_preset("gemma3-12b")
    live = pkg.random_cache(spec, n)
    engine = pkg.BlockPoolBatchEngine(pkg.BlockPool(spec, 3 * sum(spec.blocks_needed(i, n) for i in range(spec.n_layers))))
    engine.store("a", live)
    if stub_eval:
        pkg.engine.mx = pkg.copying.mx = _NoEval()
    return {
        "store": lambda: [engine.store("a", live).whole_run(0).keys],
        "concat": lambda: [c.keys for c in engine.reconstruct("a", strategy="concat")],
        "zero-copy": lambda: [c.keys for c in engine.reconstruct("a")],
    }


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
    parser.add_argument("--stub-eval", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        old = old_package(args.commit, folder)
        for n in [int(c) for c in args.contexts.split(",")]:
            sides = {"old": paths(old, n, args.stub_eval), "new": paths(kvcache, n, args.stub_eval)}
            for path in sides["new"]:
                pair = {side: fns[path] for side, fns in sides.items()}
                if args.stub_eval:
                    ms = interleaved_min_ms(pair)
                else:
                    ms = interleaved_median_ms(pair, 30)
                print(f"{n} tokens | {path}: old {ms['old']:.3f} ms, new {ms['new']:.3f} ms, "
                      f"new/old {ms['new'] / ms['old']:.2f}", flush=True)
            del sides
            mx.clear_cache()


if __name__ == "__main__":
    main()
