"""Where the copying paths' time goes on the GPU (8K and 32K, Gemma 3 12B): planning in Python,
the fused copy alone, the whole path, and a plain copy of the same bytes. Medians of 20 runs."""
import statistics
import sys
import time

import mlx.core as mx

import kvcache
from kvcache import copying, cuda_copy


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


def python_ms(fn, runs=20):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


spec = kvcache.ModelCacheSpec.from_preset("gemma3-12b")
for n in [int(a) for a in sys.argv[1:]] or [8192, 32768]:
    live = kvcache.random_cache(spec, n)
    pool = kvcache.BlockPool(spec, 3 * sum(spec.blocks_needed(i, n) for i in range(spec.n_layers)))
    engine = kvcache.BlockPoolBatchEngine(pool)
    table = engine.store("a", live)
    scattered = kvcache.scattered_copy(pool, table, "s")
    runs = [a for b in table.all_blocks() if b.index == 0 for a in (b.run.keys, b.run.values)]
    layers = [(scattered.blocks_for_layer(i), spec.capacity_tokens(i, scattered.num_blocks_for_layer(i)))
              for i in range(spec.n_layers)]
    print(f"{n} tokens: plain copy {median_ms(lambda: [mx.array(a) for a in runs]):.3f} ms"
          f" | scattered gather: plan {python_ms(lambda: cuda_copy.plan_blocks(layers, 256)):.3f},"
          f" copy_block_layers {median_ms(lambda: copying.copy_block_layers(layers, 256)):.3f},"
          f" reconstruct {median_ms(lambda: [a for c in engine.reconstruct(scattered, 'gather') for a in (c.keys, c.values)]):.3f}"
          f" | store {median_ms(lambda: [engine.store('a', live).all_blocks()[0].run.keys]):.3f}", flush=True)
