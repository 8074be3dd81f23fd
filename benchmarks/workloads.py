"""Workloads shared by the benchmarks: Gemma 3 12B caches parked in a block pool.

asv runs every parameter combination in a process of its own, and runs ``setup`` again before
every sample. The builders here are memoized per process: the first sample pays for building
a workload and every later sample restores from the same pool, already evaluated.

A restore's time does not depend on the values of the keys and values (a zero-copy restore
touches none of them; a copy moves the same bytes whatever they hold), so a parked agent is
built the cheap way: the pool's own zero-filled runs, lent once and parked back by
``engine.store``, which adopts them as it adopts a restored cache's buffers after a turn. The
engine's table is then exactly what a store makes, and nothing of 832 MiB is drawn or copied.
Nothing in this module is a benchmark.
"""

import functools
import gc
import time

import mlx.core as mx

from kvcache import AgentBlocks, BlockPool, BlockPoolBatchEngine, ModelCacheSpec
from kvcache.synthetic import scattered_copy

PRESET = "gemma3-12b"
SEED_CONTEXT = 8192  # EXP-006: 8K tokens of Gemma 3 12B, bf16: 832 MiB of keys and values
COPY_CONTEXTS = [2048, 8192]  # a copying restore's time grows with the bytes: two lengths show how
AGENT = "agent-0"


def spec():
    return ModelCacheSpec.from_preset(PRESET)


def empty_pool(context):
    """A fresh pool with room for two agents of ``context`` tokens (buffers stay lazy)."""
    s = spec()
    return BlockPool(s, total_blocks=2 * s.total_blocks_needed(context))


def empty_engine(context):
    return BlockPoolBatchEngine(empty_pool(context))


@functools.cache
def live_cache(context):
    """A model's cache list of ``context`` tokens (zeros), evaluated, as a prefill leaves it:
    the cache that ``stored_agent``'s agent restores to."""
    engine, _ = stored_agent(context)
    cache = engine.reconstruct(AGENT, "gather")  # a private copy: the store copies it again
    settle()
    return cache


@functools.cache
def stored_agent(context):
    """``(engine, table)``: one agent's ``context`` tokens stored by the engine (one run per layer)."""
    engine = empty_engine(context)
    table = _parked_zeros(engine, context)
    settle()
    return engine, table


def _parked_zeros(engine, context):
    """The table ``engine.store`` makes for ``context`` tokens, from the pool's zero-filled
    runs: lent to a cache, and parked back (the store adopts the buffers, copies nothing)."""
    s = engine.spec
    runs = engine.pool.allocate_runs([(s.blocks_needed(layer, context), layer) for layer in range(s.n_layers)], AGENT)
    filled = AgentBlocks(AGENT, context)
    for run in runs:
        filled.add_run(run)
    mx.eval([a for run in runs for a in (run.keys, run.values)])
    table = engine.store(AGENT, engine.reconstruct(filled))
    engine.pool.free_runs(runs)  # the store took the buffers over into runs of its own
    assert engine.agent_blocks(AGENT) is table, "the store did not make the agent's table: this is a bug"
    return table


@functools.cache
def scattered_agent(context):
    """``(engine, table)``: the same tokens with every block in a run of its own.

    ``gather`` is the restore path of a table that is not one whole run per layer (the default
    strategy falls back to it there): this is such a table, as a fragmented pool would leave.
    """
    engine = empty_engine(context)
    stored = _parked_zeros(engine, context)
    table = scattered_copy(engine.pool, stored, f"{AGENT}-scattered")
    engine.free_agent(AGENT)
    settle()
    return engine, table


def restorable(strategy, context):
    """The workload ``strategy`` restores: a scattered table for ``gather``, the stored one otherwise."""
    return scattered_agent(context) if strategy == "gather" else stored_agent(context)


def timed_restores(workloads, strategy, n, warmup=5):
    """Seconds of ``n`` single restores of each ``(engine, table)`` of ``workloads``: one list each.

    The workloads take turns call by call, so a burst of other load on the machine hits them
    alike; ``warmup`` untimed rounds go first. ``reconstruct`` evaluates what it returns.
    """
    for _ in range(warmup):
        for engine, table in workloads:
            engine.reconstruct(table, strategy)
    seconds = [[] for _ in workloads]
    for _ in range(n):
        for (engine, table), times in zip(workloads, seconds):
            start = time.perf_counter()
            engine.reconstruct(table, strategy)
            times.append(time.perf_counter() - start)
    return seconds


def restore_peak_bytes(engine, table, strategy):
    """Bytes MLX's allocator held at the peak of one restore beyond what it held before it."""
    before = mx.get_active_memory()
    mx.reset_peak_memory()  # to 0: a restore that allocates nothing leaves it there
    engine.reconstruct(table, strategy)
    return max(mx.get_peak_memory(), before) - before


def settle():
    """Drop garbage and hand MLX's cached buffers back to the system."""
    gc.collect()
    mx.clear_cache()


def reset_peak_rss():
    """Reset the process's peak RSS to its current RSS (Linux >= 4.0); False where unsupported.

    asv's ``peakmem_`` is the peak RSS of the whole process, setup included; after this call it
    is the peak of what runs next, on top of what the process already holds.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True
