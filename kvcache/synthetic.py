"""Test and benchmark helpers, not part of the cache's API: random mlx-lm caches of a given
spec and length (stand-ins for a real prefill's *data*), and block-per-run copies of a table.

Benchmarks and experiments need an 8K Gemma 3 12B cache without the 12B model; the layout
(``KVCache`` on global layers, ``RotatingKVCache`` on sliding ones, offsets, ring state) is
exactly what the model's own prefill leaves, only the numbers are random: one seeded random
block of 32 tokens per layer, tiled along the tokens (drawing hundreds of MiB of normals is
slow on a CPU; tiling is a plain copy). The same arguments give the same arrays.
"""

import mlx.core as mx

from .mlx_lm_caches import default_ring_index, make_cache_layer
from .copying import copy_jobs


def random_cache(spec, total_tokens, seed=0):
    """A list of mlx-lm caches holding ``total_tokens`` random tokens, evaluated.

    Global layers get mlx-lm's own capacity rounding (a multiple of 256 tokens) so that the
    buffer looks like one ``KVCache.update_and_fetch`` made; sliding layers hold their window
    in temporal order (the state after a prefill longer than the window).
    """
    key = mx.random.key(seed)
    cache = []
    for layer_id, layer in enumerate(spec.layers):
        held = spec.tokens_held(layer_id, total_tokens)
        slots = held if layer.is_sliding else -(-total_tokens // 256) * 256
        k_shape, v_shape = spec.kv_shape(slots)
        key, k_key, v_key = mx.random.split(key, 3)
        keys = _tiled_normal(k_shape, k_key, spec.dtype)
        values = _tiled_normal(v_shape, v_key, spec.dtype)
        ring_index = default_ring_index(layer, total_tokens) if layer.is_sliding else None
        cache.append(make_cache_layer(layer, keys, values, total_tokens, ring_index))
        mx.eval(keys, values)
    return cache


def _tiled_normal(shape, key, dtype, tile=32):
    B, H, S, D = shape
    block = mx.random.normal((B, H, min(S, tile), D), key=key).astype(dtype)
    return mx.tile(block, (1, 1, -(-S // tile), 1))[:, :, :S, :] if S > tile else block


def scattered_copy(pool, agent_blocks, agent_id):
    """A copy of ``agent_blocks`` for ``agent_id`` in which every block is a run of its own.

    The engine always stores a layer as one run; a table of a run per block (the seed's
    per-block design, or a pool that had to fragment) restores through ``gather`` instead.
    This makes such a table from stored data, for tests and benchmarks. All-or-nothing like
    ``allocate``.
    """
    from .agent_blocks import AgentBlocks

    table = AgentBlocks(agent_id, agent_blocks.total_tokens)
    table.ring_index.update(agent_blocks.ring_index)
    blocks = agent_blocks.all_blocks()
    runs = pool.allocate_runs([(1, block.layer_id) for block in blocks], agent_id)  # all or none
    try:
        jobs = []
        for block, run in zip(blocks, runs):
            start, stop = block.token_range(pool.spec.block_tokens)
            jobs += [([(block.run.keys, start, stop)], run.capacity), ([(block.run.values, start, stop)], run.capacity)]
            table.add_run(run)
        made = iter(copy_jobs(jobs))
        for run in runs:
            run.keys, run.values = next(made), next(made)
        mx.eval([a for run in runs for a in (run.keys, run.values)])
    except BaseException:
        pool.free_runs(runs)
        raise
    return table
