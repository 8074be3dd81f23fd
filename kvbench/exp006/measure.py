"""EXP-006's measurement: time single ``engine.reconstruct`` calls through the library.

For one context length: a seeded synthetic cache of the spec's shape (``kvcache.synthetic.random_cache``)
is stored with a ``BlockPoolBatchEngine`` in a pool sized to fit, and the live cache is dropped.
Each strategy then restores it, ``warmup`` untimed calls and ``runs`` timed ones, each timed
call alone between two ``time.perf_counter()`` readings (``reconstruct`` evaluates what it
returns, so the time covers the work).

- ``zero_copy`` and ``concat`` restore the stored table (one contiguous run per layer).
- ``gather`` restores a block-per-run copy of it (``kvcache.synthetic.scattered_copy``): the table a
  fragmented pool would hold, where ``zero_copy`` would fall back to ``gather`` too.

A zero-copy restore lends the pool's buffers to the cache it returns; the cache is dropped
unchanged, so the next restore finds the loan untouched (as the seed times it: back to back).
"""

import time

import mlx.core as mx

import kvcache
import kvcache.synthetic

from .stats import summarize

AGENT = "exp006"
SCATTERED_AGENT = "exp006-scattered"


def measure_context(spec, n_tokens, plan, warmup, progress):
    """Samples (ms) of every strategy in ``plan`` (``{strategy: runs}``) at ``n_tokens``.

    Returns ``{strategy: {"samples_ms", "blocks", "kv_bytes", "table"}}``; ``progress`` gets
    one line per step. The pool goes when this returns (``mx.clear_cache()`` then frees it).
    """
    blocks = spec.total_blocks_needed(n_tokens)
    scattered = "gather" in plan
    engine = kvcache.BlockPoolBatchEngine(kvcache.BlockPool(spec, blocks * (2 if scattered else 1)))
    progress(f"{n_tokens} tokens: storing a synthetic cache ({spec.kv_bytes(n_tokens) / 2**20:.0f} MiB, {blocks} blocks)")
    stored = engine.store(AGENT, kvcache.synthetic.random_cache(spec, n_tokens))
    tables = {"contiguous": stored}
    if scattered:
        tables["scattered"] = kvcache.synthetic.scattered_copy(engine.pool, stored, SCATTERED_AGENT)
    results = {}
    for strategy, runs in plan.items():
        table_kind = "scattered" if strategy == "gather" else "contiguous"
        progress(f"{n_tokens} tokens: {strategy} on the {table_kind} table, {warmup} warm-up + {runs} timed calls")
        samples = time_restores(engine, tables[table_kind], strategy, runs, warmup)
        stats = summarize(samples)
        progress(f"{n_tokens} tokens: {strategy}: p50 {stats['p50']:.3f} ms, p95 {stats['p95']:.3f} ms, mean {stats['mean']:.3f} ms")
        results[strategy] = {"samples_ms": samples, "blocks": blocks, "kv_bytes": spec.kv_bytes(n_tokens), "table": table_kind}
        mx.clear_cache()
    return results


def time_restores(engine, table, strategy, runs, warmup):
    """``runs`` single-call times (ms) of ``engine.reconstruct(table, strategy)``, after
    ``warmup`` untimed calls."""
    samples = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        cache = engine.reconstruct(table, strategy=strategy)
        stop = time.perf_counter()
        del cache
        if i >= warmup:
            samples.append((stop - start) * 1e3)
    return samples
