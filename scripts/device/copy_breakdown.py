"""Where the copying paths' time goes (Gemma 3 12B; contexts from argv, default 8K and 32K):
plain copies, gather of a stored and of a scattered table, store's copies alone and the whole
store. Medians of 20 runs."""
import statistics
import sys
import time

import mlx.core as mx

import kvcache
from kvcache import copying


def median_ms(fn, runs=20):
    for _ in range(3):
        mx.eval(fn())
    times = []
    for _ in range(runs):
        mx.synchronize()
        start = time.perf_counter()
        mx.eval(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def arrays(cache):
    return [a for c in cache for a in (c.keys, c.values)]


spec = kvcache.ModelCacheSpec.from_preset("gemma3-12b")
for n in [int(a) for a in sys.argv[1:]] or [8192, 32768]:
    live = kvcache.random_cache(spec, n)
    pool = kvcache.BlockPool(spec, 3 * sum(spec.blocks_needed(i, n) for i in range(spec.n_layers)))
    engine = kvcache.BlockPoolBatchEngine(pool)
    table = engine.store("a", live)
    scattered = kvcache.scattered_copy(pool, table, "s")
    runs = [a for i in range(spec.n_layers) for a in (table.whole_run(i).keys, table.whole_run(i).values)]
    live_arrays = [a for c in live for a in (c.keys, c.values)]
    caps = [spec.capacity_tokens(i, spec.blocks_needed(i, n)) for i in range(spec.n_layers) for _ in "kv"]
    store_jobs = [([(a, 0, a.shape[2])], cap) for a, cap in zip(live_arrays, caps)]
    print(f"{n} tokens: plain copy of the runs {median_ms(lambda: [mx.array(a) for a in runs]):.3f} ms,"
          f" of the live cache {median_ms(lambda: [mx.array(a) for a in live_arrays]):.3f}"
          f" | gather of the stored table {median_ms(lambda: arrays(engine.reconstruct('a', 'gather'))):.3f},"
          f" of the scattered table {median_ms(lambda: arrays(engine.reconstruct(scattered, 'gather'))):.3f}"
          f" | store: copy_jobs alone {median_ms(lambda: copying.copy_jobs(store_jobs)):.3f},"
          f" engine.store {median_ms(lambda: [engine.store('a', live).whole_run(0).keys]):.3f}", flush=True)
