"""Where the copying paths' time goes (Gemma 3 12B; contexts from argv, default 2K, 8K, 32K):
plain copies, and as many copies of 4 KiB arrays (what the host alone costs per copy op);
``copy_jobs`` alone with a store's jobs and with a fragmented gather's jobs, concatenating as
words by this device's rule (``copying.WORDS_FROM_BYTES``), always, or never; the store's jobs
without the room for the next token (a plain copy each: what the zero tails cost); the whole
``engine.store``. Every variant is timed in turn in each of 30 rounds; medians."""
import sys

import mlx.core as mx

import kvcache
import kvcache.synthetic
from kvbench.restore_costs import interleaved_median_ms
from kvcache import copying
from kvcache.mlx_lm_caches import arrays
from kvcache.restore import gather_jobs

RULES = {"": copying.WORDS_FROM_BYTES[mx.default_device().type.name], ", always as words": 0,
         ", never as words": float("inf")}


def copies(jobs, words_from_bytes):
    return lambda: copying.copy_jobs(jobs, words_from_bytes)


def breakdown(spec, n):
    """Median ms of every variant at ``n`` tokens."""
    live = kvcache.synthetic.random_cache(spec, n)
    pool = kvcache.BlockPool(spec, 3 * spec.total_blocks_needed(n))
    engine = kvcache.BlockPoolBatchEngine(pool)
    scattered = kvcache.synthetic.scattered_copy(pool, engine.store("a", live), "s")
    live_arrays = arrays(live)
    store_jobs = engine.plan_store("a", live).copy_jobs()  # the very copies engine.store makes
    scattered_jobs = gather_jobs(spec, scattered)
    block_arrays = [a for b in scattered.all_blocks() for a in (b.run.keys, b.run.values)]
    tiny = [mx.zeros((1, 8, 1, 256), mx.bfloat16) for _ in live_arrays]
    mx.eval(tiny)
    variants = {"plain copy of the live cache": lambda: [mx.array(a) for a in live_arrays]}
    variants[f"plain copy of {len(tiny)} arrays of 4 KiB"] = lambda: [mx.array(a) for a in tiny]
    variants |= {f"store's copies{rule}": copies(store_jobs, value) for rule, value in RULES.items()}
    untailed = [(pieces, sum(z - a for _, a, z in pieces)) for pieces, _ in store_jobs]
    variants["store's copies without the room for the next token"] = lambda: copying.copy_jobs(untailed)
    variants["engine.store"] = lambda: [engine.store("a", live).whole_run(0).keys]
    variants["plain copy of the scattered block buffers"] = lambda: [mx.array(a) for a in block_arrays]
    variants |= {f"scattered gather's copies{rule}": copies(scattered_jobs, value) for rule, value in RULES.items()}
    return interleaved_median_ms(variants, 30)


gemma = kvcache.ModelCacheSpec.from_preset("gemma3-12b")
for context in [int(a) for a in sys.argv[1:]] or [2048, 8192, 32768]:
    for name, value in breakdown(gemma, context).items():
        print(f"{context} tokens | {name}: {value:.3f} ms", flush=True)
