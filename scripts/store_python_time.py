"""Python time of one ``engine.store`` with the copies left out (MLX evaluation stubbed), for
Gemma 3 12B at the contexts in argv (default 2K, 8K, 32K). Prints the minimum of 300 stores:
the bookkeeping a store adds to its copies, on this machine's CPU."""
import gc
import sys
import time

import mlx.core as mx

import kvcache
from kvcache import copying, engine


class _NoEval:
    """``mlx.core`` with ``eval`` and ``async_eval`` doing nothing: the copies are never made."""

    def __getattr__(self, name):
        return getattr(mx, name)

    @staticmethod
    def eval(*arrays):
        pass

    @staticmethod
    def async_eval(*arrays):
        pass


def store_ms(spec, n):
    live = kvcache.random_cache(spec, n)
    pool = kvcache.BlockPool(spec, 3 * sum(spec.blocks_needed(i, n) for i in range(spec.n_layers)))
    eng = kvcache.BlockPoolBatchEngine(pool)
    eng.store("agent", live)  # a real store first: later ones replace it, as a re-park does
    engine.mx = copying.mx = _NoEval()
    try:
        times = []
        for _ in range(300):
            start = time.perf_counter()
            eng.store("agent", live)
            times.append(time.perf_counter() - start)
    finally:
        engine.mx = copying.mx = mx
    return min(times) * 1e3


spec = kvcache.ModelCacheSpec.from_preset("gemma3-12b")
for n in [int(a) for a in sys.argv[1:]] or [2048, 8192, 32768]:
    print(f"{n} tokens: store without its copies {store_ms(spec, n):.3f} ms (min of 300)", flush=True)
    gc.collect()  # the previous context's arrays are gone before the next is timed
    mx.synchronize()
