"""A store's bookkeeping on this machine, for Gemma 3 12B at the contexts in argv (default 2K,
8K, 32K): ``engine.plan_store`` alone (reading the cache and planning every layer: Python,
no MLX op; minimum of 300), and a whole ``engine.store`` against its copies alone
(``copying.copy_jobs`` of the plan's own jobs), medians of 30 rounds timed in turn: the
difference is what a store adds to its copies (the commit: evaluation, booking, the table)."""
import gc
import sys
import time

import mlx.core as mx

import kvcache
import kvcache.synthetic
from kvbench.restore_costs import interleaved_median_ms
from kvcache.copying import copy_jobs


def store_parts_ms(spec, n):
    live = kvcache.synthetic.random_cache(spec, n)
    engine = kvcache.BlockPoolBatchEngine(kvcache.BlockPool(spec, 3 * spec.total_blocks_needed(n)))
    engine.store("agent", live)  # a real store first: later ones replace it, as a re-park does
    plan_times = []
    for _ in range(300):
        start = time.perf_counter()
        plan = engine.plan_store("agent", live)
        plan_times.append(time.perf_counter() - start)
    jobs = plan.copy_jobs()
    ms = interleaved_median_ms({
        "store": lambda: [engine.store("agent", live).whole_run(0).keys],
        "copies": lambda: copy_jobs(jobs),
    }, 30)
    return min(plan_times) * 1e3, ms["store"], ms["copies"]


spec = kvcache.ModelCacheSpec.from_preset("gemma3-12b")
for n in [int(a) for a in sys.argv[1:]] or [2048, 8192, 32768]:
    plan, store, copies = store_parts_ms(spec, n)
    print(f"{n} tokens: plan {plan:.3f} ms (min of 300); store {store:.2f} ms, its copies {copies:.2f} ms, "
          f"bookkeeping {store - copies:.2f} ms (medians of 30)", flush=True)
    gc.collect()  # the previous context's arrays are gone before the next is timed
    mx.synchronize()
