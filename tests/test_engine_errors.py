"""Every caller mistake the engine can see: the error's type, a message naming the thing, and
nothing stored lost or changed."""

import dataclasses

import mlx.core as mx
import pytest
from mlx_lm.models.cache import make_prompt_cache

from kvcache import (
    AgentBlocks,
    BlockOwnershipError,
    BlockPool,
    BlockPoolBatchEngine,
    CacheMismatchError,
    KVCacheError,
    LayerSpec,
    PoolExhaustedError,
    UnknownAgentError,
    UnknownStrategyError,
)

from conftest import assert_caches_equal, prompt


def state(engine):
    pool = engine.pool
    return pool.num_free_blocks, pool.num_used_blocks, pool.agent_ids(), engine.agent_ids()


@pytest.fixture
def stored(gemma):
    """An engine holding agent 'a' (13 tokens), and that cache."""
    engine = BlockPoolBatchEngine(BlockPool(gemma.spec, total_blocks=100))
    cache = gemma.prefill(prompt(13))
    engine.store("a", cache)
    return engine, cache


def assert_a_intact(engine, cache, before):
    assert state(engine) == before
    assert_caches_equal(cache, engine.reconstruct("a", "gather"))


def test_unknown_strategy_names_it_and_the_choices(stored):
    engine, cache = stored
    with pytest.raises(UnknownStrategyError, match=r"unknown restore strategy 'mmap': choose one of zero_copy, gather, concat"):
        engine.reconstruct("a", "mmap")


@pytest.mark.parametrize("call", ["reconstruct", "agent_blocks", "free_agent"])
def test_unknown_agent_is_named(stored, call):
    engine, cache = stored
    before = state(engine)
    with pytest.raises(UnknownAgentError, match=r"agent 'ghost' has nothing stored"):
        getattr(engine, call)("ghost")
    assert_a_intact(engine, cache, before)


def test_a_freed_agent_is_unknown_by_id_and_by_its_old_table(stored):
    engine, cache = stored
    table = engine.agent_blocks("a")
    assert engine.free_agent("a") == table.num_blocks
    assert engine.pool.num_used_blocks == 0 and engine.agent_ids() == []
    with pytest.raises(UnknownAgentError, match=r"agent 'a' has nothing stored"):
        engine.reconstruct("a")
    with pytest.raises(UnknownAgentError, match=r"agent 'a' has no blocks in the pool \(never stored, or freed\)"):
        engine.reconstruct(table)
    with pytest.raises(UnknownAgentError):
        engine.free_agent("a")


def test_a_table_with_too_few_blocks_says_how_many_are_needed(stored, gemma):
    engine, cache = stored
    table = AgentBlocks("t", total_tokens=13)
    for layer_id in range(gemma.spec.n_layers):
        table.add_run(engine.pool.allocate_run(1, layer_id, "t"))
    with pytest.raises(CacheMismatchError, match=r"agent 't' layer 0 has 1 blocks, too few for 8 tokens.*blocks_needed\(0, 13\)"):
        engine.reconstruct(table)


def test_a_cache_with_another_layer_count(stored, tiny_models):
    engine, cache = stored
    before = state(engine)
    llama_cache = tiny_models["llama"].prefill(prompt(5))
    with pytest.raises(CacheMismatchError, match=r"cache has 3 layers, the spec 6"):
        engine.store("a", llama_cache)
    with pytest.raises(CacheMismatchError, match=r"cache has str layers"):
        engine.store("a", "not a cache")
    assert_a_intact(engine, cache, before)


def _engine_with(gemma, **changes):
    spec = dataclasses.replace(gemma.spec, **changes)
    return BlockPoolBatchEngine(BlockPool(spec, total_blocks=100))


@pytest.mark.parametrize("changes,message", [
    (dict(n_kv_heads=4), r"cache layer 0 keys/values have shapes \(1, 2, 13, 16\).*spec expects \(1, 4, 13, 16\)"),
    (dict(k_head_dim=8, v_head_dim=8), r"cache layer 0 keys/values have shapes .*\(1, 2, 13, 8\)"),
    (dict(dtype=mx.bfloat16), r"cache layer 0 holds mlx.core.float32, the spec says mlx.core.bfloat16"),
    (dict(layers=((LayerSpec("sliding_window", window=16),) * 2 + (LayerSpec("global"),)) * 2),
     r"cache layer 0 has window 8 \(keep 0\), the spec says 16 \(keep 0\)"),
    (dict(layers=(LayerSpec("global"),) * 6), r"cache layer 0 is RotatingKVCache, the spec expects KVCache"),
])
def test_a_cache_of_another_model_is_refused(gemma, changes, message):
    engine = _engine_with(gemma, **changes)
    with pytest.raises(CacheMismatchError, match=message):
        engine.store("a", gemma.prefill(prompt(13)))
    assert state(engine) == (100, 0, [], [])


def test_a_mismatch_in_a_later_layer_frees_the_earlier_layers_blocks(stored, gemma):
    engine, cache = stored
    before = state(engine)
    bad = gemma.prefill(prompt(20, seed=3))
    bad[4].keys = bad[4].keys.astype(mx.float16)  # layers 0-3 are copied before layer 4 is seen
    with pytest.raises(CacheMismatchError, match=r"cache layer 4 holds mlx.core.float16"):
        engine.store("a", bad)
    assert_a_intact(engine, cache, before)


def test_an_empty_cache_is_refused(stored, gemma):
    engine, cache = stored
    before = state(engine)
    with pytest.raises(CacheMismatchError, match=r"cache layer 0 is empty: run the prompt through the model"):
        engine.store("a", make_prompt_cache(gemma.model))
    assert_a_intact(engine, cache, before)


def test_layers_that_disagree_on_the_token_count_are_refused(stored, gemma):
    engine, cache = stored
    before = state(engine)
    torn = gemma.prefill(prompt(13))
    torn[5].offset = 12
    with pytest.raises(CacheMismatchError, match=r"disagree on the token count \(\[12, 13\]\)"):
        engine.store("a", torn)
    assert_a_intact(engine, cache, before)


def test_a_store_the_pool_cannot_hold_keeps_the_previous_state(gemma):
    engine = BlockPoolBatchEngine(BlockPool(gemma.spec, total_blocks=20))
    cache = gemma.prefill(prompt(5))
    engine.store("a", cache)  # 4 sliding layers x 2 + 2 global x 2 = 12 blocks
    before = state(engine)
    assert before[1] == 12
    with pytest.raises(PoolExhaustedError, match=r"asked for 24 blocks for agent 'a' \(6 layers\), 8 of 20 free and 12 it gives up"):
        engine.store("a", gemma.prefill(prompt(30)))  # needs 2 x 8 + 4 x 2 = 24
    assert_a_intact(engine, cache, before)
    with pytest.raises(PoolExhaustedError):
        engine.store("b", gemma.prefill(prompt(30)))
    assert state(engine) == before
    with pytest.raises(UnknownAgentError):
        engine.reconstruct("b")


def test_every_error_is_a_kvcache_error():
    import kvcache.errors as errors

    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) == 9
    assert all(issubclass(c, KVCacheError) for c in classes)


def test_a_stale_table_is_refused_after_an_adopting_store(gemma):
    """The table of an earlier store, whose blocks a later store adopted and whose ring slots the
    lent cache overwrote, must not restore the overwritten data as its own."""
    tokens = prompt(30, seed=16)
    engine = BlockPoolBatchEngine(BlockPool(gemma.spec, total_blocks=100))
    old_table = engine.store("a", gemma.prefill(tokens[:9]))
    lent = engine.reconstruct("a")
    gemma.model(tokens[None, 9:10], cache=lent)  # token 9 overwrites token 1's ring slot in place
    engine.store("a", lent)
    before = state(engine)
    with pytest.raises(BlockOwnershipError, match=r"block table of agent 'a' is out of date.*engine.agent_blocks\('a'\)"):
        engine.reconstruct(old_table, "gather")
    assert_a_intact(engine, lent, before)


def test_a_stale_table_is_refused_after_a_copying_store(stored, gemma):
    engine, cache = stored
    old_table = engine.agent_blocks("a")
    newer = gemma.prefill(prompt(20, seed=4))
    engine.store("a", newer)  # new runs; the old table's blocks are freed (and may be reused)
    with pytest.raises(BlockOwnershipError, match=r"out of date"):
        engine.reconstruct(old_table)
    assert_caches_equal(newer, engine.reconstruct("a"))


@pytest.mark.parametrize("b_holds_a", [True, False])
@pytest.mark.parametrize("strategy", ["zero_copy", "gather", "concat"])
def test_a_table_of_another_pool_is_refused(stored, gemma, strategy, b_holds_a):
    """Engine B must not restore (or lend) engine A's blocks as its own, whether or not B
    holds an agent of that id."""
    engine_a, cache = stored
    table = engine_a.agent_blocks("a")
    engine_b = BlockPoolBatchEngine(BlockPool(gemma.spec, total_blocks=100))
    b_cache = gemma.prefill(prompt(20, seed=5))
    if b_holds_a:
        engine_b.store("a", b_cache)
    before_a, before_b = state(engine_a), state(engine_b)
    with pytest.raises(BlockOwnershipError, match=r"block table of agent 'a' holds blocks of another pool.*engine of the pool that stored it"):
        engine_b.reconstruct(table, strategy)
    assert state(engine_b) == before_b
    if b_holds_a:
        assert_caches_equal(b_cache, engine_b.reconstruct("a", "gather"))
    lent = engine_a.reconstruct("a")  # A lends its runs as before: B's refusal lent nothing
    assert_caches_equal(cache, lent)
    assert state(engine_a) == before_a


def test_a_cache_restored_from_another_engine_is_copied_not_adopted(stored, gemma):
    engine_a, cache = stored
    lent = engine_a.reconstruct("a")
    engine_b = BlockPoolBatchEngine(BlockPool(gemma.spec, total_blocks=100))
    table_b = engine_b.store("a", lent)
    held_by_a = {id(a) for run in engine_a.agent_blocks("a").runs() for a in (run.keys, run.values)}
    assert not held_by_a & {id(a) for run in table_b.runs() for a in (run.keys, run.values)}
    assert_caches_equal(cache, engine_b.reconstruct("a", "gather"))
    assert_caches_equal(cache, engine_a.reconstruct("a", "gather"))


def test_without_an_mlx_backend_the_import_names_the_extra_to_install():
    """On Linux plain ``mlx`` has no backend and ``mlx.core`` fails to import (here: made to fail)."""
    import subprocess
    import sys

    code = "import sys; sys.modules['mlx.core'] = None; import kvcache"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1
    assert "ImportError: kvcache: MLX has no backend here" in run.stderr and "kvcache[cpu]" in run.stderr, run.stderr
