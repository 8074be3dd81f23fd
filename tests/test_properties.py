"""Property-based: random sequences of pool and engine operations keep every invariant.

A hypothesis state machine drives two engines (two model specs, each its own pool) through
store, reconstruct (every strategy, whole-run and block-per-run tables), advance-and-store-back,
raw allocate/free, and free_agent, for several agents. It keeps its own model of who owns what
and checks after every step:
- no block is held by two owners, and the pool's used count is exactly what the owners hold;
- ``num_free_blocks + num_used_blocks == total_blocks``; allocation succeeds exactly when the
  model says enough blocks are free (so freed blocks are reusable);
- every restore equals what was stored last (held keys and values in temporal order);
- an operation that raised changed nothing.
Caches are ``kvcache.random_cache`` data advanced with mlx-lm's own ``update_and_fetch`` (one
token at a time, so rings wrap mid-ring, or a chunk, so a buffer outgrows its window).
"""

import mlx.core as mx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kvcache import (
    STRATEGIES,
    AgentOnLoanError,
    BlockOwnershipError,
    BlockPool,
    BlockPoolBatchEngine,
    LayerSpec,
    ModelCacheSpec,
    PoolExhaustedError,
    UnknownAgentError,
)
from kvcache.synthetic import random_cache, scattered_copy

from conftest import held_tokens, small_spec

SPECS = [
    small_spec(block_tokens=4, window=6),  # global, sliding (window not a multiple of blocks), global
    ModelCacheSpec(
        layers=(LayerSpec("sliding_window", window=5, keep=2), LayerSpec("global")),
        n_kv_heads=1, k_head_dim=4, v_head_dim=6, dtype=mx.float16, block_tokens=3,
    ),
]
POOL_BLOCKS = 40
AGENTS = ["a0", "a1", "a2"]
RAW = "raw"

engines = st.integers(0, len(SPECS) - 1)
agents = st.sampled_from(AGENTS)
strategies = st.sampled_from(sorted(STRATEGIES))


def advance(spec, cache, steps, chunk, seed):
    """``steps`` single tokens then a ``chunk`` of tokens, written by mlx-lm's cache code."""
    key = mx.random.key(seed)
    for size in [1] * steps + ([chunk] if chunk else []):
        for layer_cache in cache:
            key, k_key, v_key = mx.random.split(key, 3)
            k_shape, v_shape = spec.kv_shape(size)
            layer_cache.update_and_fetch(mx.random.normal(k_shape, key=k_key).astype(spec.dtype),
                                         mx.random.normal(v_shape, key=v_key).astype(spec.dtype))
    return cache


def snapshot(cache):
    """What a cache holds, per layer: (token count, keys, values), evaluated."""
    held = [(c.offset,) + held_tokens(c) for c in cache]
    mx.eval([a for _, k, v in held for a in (k, v)])
    return held


def assert_holds(cache, expected):
    got = snapshot(cache)
    assert len(got) == len(expected)
    for layer_id, ((n, k, v), (n0, k0, v0)) in enumerate(zip(got, expected)):
        assert n == n0, f"layer {layer_id}: {n} tokens, stored {n0}"
        assert k.shape == k0.shape and mx.array_equal(k, k0).item() and mx.array_equal(v, v0).item(), (
            f"layer {layer_id}: restored data differs from what was stored"
        )


class PoolAndEngine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.engines = [BlockPoolBatchEngine(BlockPool(spec, POOL_BLOCKS)) for spec in SPECS]
        self.stored = [{} for _ in SPECS]  # agent -> snapshot of its last stored cache
        self.raw = [[] for _ in SPECS]  # block lists allocated directly
        self.freed_raw = [[] for _ in SPECS]  # block lists already given back

    # --- the model's view ----------------------------------------------------------------------
    def owned_blocks(self, e):
        tables = [self.engines[e].agent_blocks(a).all_blocks() for a in self.stored[e]]
        return [b for blocks in tables + self.raw[e] for b in blocks]

    def free_count(self, e):
        return POOL_BLOCKS - len(self.owned_blocks(e))

    def pool_state(self, e):
        pool = self.engines[e].pool
        return pool.num_free_blocks, pool.num_used_blocks, pool.agent_ids(), self.engines[e].agent_ids()

    def own_count(self, e, agent):
        return len(self.engines[e].agent_blocks(agent).all_blocks()) if agent in self.stored[e] else 0

    def blocks_for(self, e, n_tokens):
        spec = SPECS[e]
        return spec.total_blocks_needed(n_tokens)

    # --- rules -----------------------------------------------------------------------------------
    @rule(e=engines, agent=agents, n=st.integers(1, 14), steps=st.integers(0, 7), chunk=st.integers(0, 4),
          seed=st.integers(0, 2**16))
    def store(self, e, agent, n, steps, chunk, seed):
        engine, spec = self.engines[e], SPECS[e]
        cache = advance(spec, random_cache(spec, n, seed), steps, chunk, seed + 1)
        expected = snapshot(cache)
        needed = self.blocks_for(e, cache[0].offset)
        before = self.pool_state(e)
        if needed > self.free_count(e) + self.own_count(e, agent):  # what the agent gives up counts
            try:
                engine.store(agent, cache)
            except PoolExhaustedError:
                assert self.pool_state(e) == before
                return
            raise AssertionError(f"store of {needed} blocks with {self.free_count(e)} free did not raise")
        table = engine.store(agent, cache)
        assert table.num_blocks == needed and table.total_tokens == cache[0].offset
        self.stored[e][agent] = expected

    @rule(e=engines, agent=agents, strategy=strategies)
    def reconstruct(self, e, agent, strategy):
        engine = self.engines[e]
        if agent not in self.stored[e]:
            before = self.pool_state(e)
            try:
                engine.reconstruct(agent, strategy)
            except UnknownAgentError:
                assert self.pool_state(e) == before
                return
            raise AssertionError(f"restoring never-stored agent {agent!r} did not raise")
        assert_holds(engine.reconstruct(agent, strategy), self.stored[e][agent])

    @precondition(lambda self: any(self.stored))
    @rule(e=engines, agent=agents, strategy=strategies, steps=st.integers(1, 5), chunk=st.integers(0, 3),
          seed=st.integers(0, 2**16))
    def resume_and_park(self, e, agent, strategy, steps, chunk, seed):
        """Restore, decode a little, store back: the usual life of an agent's cache."""
        engine, spec = self.engines[e], SPECS[e]
        if agent not in self.stored[e]:
            return
        table = engine.agent_blocks(agent)
        cache = advance(spec, engine.reconstruct(agent, strategy), steps, chunk, seed)
        expected = snapshot(cache)
        before = self.pool_state(e)
        fits = self.blocks_for(e, cache[0].offset) <= self.free_count(e) + self.own_count(e, agent)
        try:
            engine.store(agent, cache)
        except PoolExhaustedError:
            assert not fits, "a final state that fits the pool was refused"
            assert self.pool_state(e) == before
            if strategy == "zero_copy":  # the lent cache moved on and was not stored
                try:
                    engine.reconstruct(agent)
                except AgentOnLoanError:
                    assert engine.free_agent(agent) == len(table.all_blocks())
                    del self.stored[e][agent]
                    return
                raise AssertionError("restoring an agent whose lent cache advanced did not raise")
            return  # a private copy advanced: the stored state is untouched (checked by the next restore)
        self.stored[e][agent] = expected

    @precondition(lambda self: any(self.stored))
    @rule(e=engines, agent=agents, strategy=strategies)
    def reconstruct_block_per_run_table(self, e, agent, strategy):
        """A table whose every block is its own run (a fragmented pool) restores through gather."""
        engine = self.engines[e]
        if agent not in self.stored[e]:
            return
        table = engine.agent_blocks(agent)
        before = self.pool_state(e)
        if table.num_blocks > self.free_count(e):
            try:
                scattered_copy(engine.pool, table, "scattered")
            except PoolExhaustedError:
                assert self.pool_state(e) == before
                return
            raise AssertionError("scattered_copy beyond the free blocks did not raise")
        scattered = scattered_copy(engine.pool, table, "scattered")
        try:
            assert_holds(engine.reconstruct(scattered, strategy), self.stored[e][agent])
        finally:
            engine.pool.free(scattered.all_blocks())
        assert self.pool_state(e) == before

    @rule(e=engines, n=st.integers(1, 12), layer=st.integers(0, 2))
    def allocate(self, e, n, layer):
        pool = self.engines[e].pool
        layer %= SPECS[e].n_layers
        before = self.pool_state(e)
        if n > self.free_count(e):
            try:
                pool.allocate(n, layer, RAW)
            except PoolExhaustedError:
                assert self.pool_state(e) == before
                return
            raise AssertionError(f"allocating {n} blocks with {self.free_count(e)} free did not raise")
        blocks = pool.allocate(n, layer, RAW)
        assert len(blocks) == n and all(pool.is_allocated(b) for b in blocks)
        self.raw[e].append(blocks)

    @precondition(lambda self: any(self.raw))
    @rule(e=engines, pick=st.integers(0, 100))
    def free(self, e, pick):
        if not self.raw[e]:
            return
        blocks = self.raw[e].pop(pick % len(self.raw[e]))
        self.engines[e].pool.free(blocks)
        self.freed_raw[e].append(blocks)

    @precondition(lambda self: any(self.freed_raw))
    @rule(e=engines, pick=st.integers(0, 100), with_live=st.booleans())
    def free_again(self, e, pick, with_live):
        """Freeing freed blocks raises and frees nothing, even listed with live ones."""
        if not self.freed_raw[e]:
            return
        blocks = list(self.freed_raw[e][pick % len(self.freed_raw[e])])
        if with_live and self.raw[e]:
            blocks = self.raw[e][0] + blocks
        before = self.pool_state(e)
        try:
            self.engines[e].pool.free(blocks)
        except BlockOwnershipError:
            assert self.pool_state(e) == before
            return
        raise AssertionError("freeing freed blocks did not raise")

    @rule(e=engines, agent=agents)
    def free_agent(self, e, agent):
        engine = self.engines[e]
        if agent not in self.stored[e]:
            before = self.pool_state(e)
            try:
                engine.free_agent(agent)
            except UnknownAgentError:
                assert self.pool_state(e) == before
                return
            raise AssertionError(f"freeing never-stored agent {agent!r} did not raise")
        n_blocks = engine.agent_blocks(agent).num_blocks
        assert engine.free_agent(agent) == n_blocks
        del self.stored[e][agent]

    # --- invariants ------------------------------------------------------------------------------
    @invariant()
    def ownership_and_counts_are_exact(self):
        for e, engine in enumerate(self.engines):
            pool = engine.pool
            owned = self.owned_blocks(e)
            ids = [b.block_id for b in owned]
            assert len(ids) == len(set(ids)), "a block is held by two owners"
            assert all(pool.is_allocated(b) for b in owned), "an owner holds a block the pool calls free"
            assert pool.num_used_blocks == len(owned)
            assert pool.num_free_blocks + pool.num_used_blocks == pool.total_blocks
            assert pool.free_bytes == pool.num_free_blocks * SPECS[e].bytes_per_block
            owners = set(self.stored[e]) | ({RAW} if self.raw[e] else set())
            assert pool.agent_ids() == sorted(owners)
            assert engine.agent_ids() == sorted(self.stored[e])
            for agent in self.stored[e]:
                assert pool.num_blocks_of(agent) == engine.agent_blocks(agent).num_blocks
            for blocks in self.freed_raw[e]:
                assert not any(pool.is_allocated(b) for b in blocks)


PoolAndEngine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPoolAndEngine = PoolAndEngine.TestCase
