"""Restore correctness with real tiny mlx-lm models, ring states, and the zero-copy facts.

The oracle for correctness is the model itself: a restored cache must make the model produce
the same logits as the cache it was stored from, for single-token steps and multi-token chunks.
"""

import gc

import mlx.core as mx
import pytest
from mlx_lm.models.cache import make_prompt_cache

from kvcache import STRATEGIES, AgentOnLoanError, BlockPool, BlockPoolBatchEngine, LayerSpec, ModelCacheSpec
from kvcache import copying
from kvcache.synthetic import random_cache, scattered_copy
from kvcache.mlx_lm_caches import layer_copy_jobs

from conftest import (
    TinyModel,
    arrays_equal,
    assert_caches_equal,
    assert_same_continuation,
    bytes_allocated_during,
    held_tokens,
    max_logit_gap,
    prompt,
)

MODELS = ["gemma3-w8", "gemma3-w6", "llama", "qwen3-keep4"]
# shorter than the windows (6, 8), equal to them, across them, many windows long; multiples of
# block_tokens (4) and not
LENGTHS = [1, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 31, 40]


def engine_for(spec, total_blocks=400):
    return BlockPoolBatchEngine(BlockPool(spec, total_blocks))


def stored_prefill(tiny, n):
    """``(tokens, original, engine)``: a prefill of ``n`` of ``n + 10`` tokens, stored as "agent"."""
    tokens = prompt(n + 10, seed=n)
    original = tiny.prefill(tokens[:n])
    engine = engine_for(tiny.spec)
    engine.store("agent", original)
    return tokens, original, engine


def run_of(engine, agent_id, layer_id):
    return engine.agent_blocks(agent_id).blocks_for_layer(layer_id)[0].run


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("name", MODELS)
def test_restored_cache_continues_like_the_original(tiny_models, name, n, strategy):
    tiny = tiny_models[name]
    tokens, original, engine = stored_prefill(tiny, n)
    restored = engine.reconstruct("agent", strategy)
    assert_caches_equal(original, restored)
    assert_same_continuation(tiny, original, restored, tokens[n:])


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("n", [3, 6, 9, 13, 31])
@pytest.mark.parametrize("name", MODELS)
def test_a_block_per_run_table_continues_like_the_original(tiny_models, name, n, strategy):
    """A table whose every block is a run of its own (a fragmented pool) restores through gather."""
    tiny = tiny_models[name]
    tokens, original, engine = stored_prefill(tiny, n)
    table = scattered_copy(engine.pool, engine.agent_blocks("agent"), "agent-copy")
    assert all(b.run.n_blocks == 1 for b in table.all_blocks())
    restored = engine.reconstruct(table, strategy)
    assert_caches_equal(original, restored)
    assert_same_continuation(tiny, original, restored, tokens[n:])


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("n,copied,capacity", [(200, 256, 256), (256, 256, 512)])
def test_a_global_layer_is_copied_whole_when_its_buffer_is_the_runs_size(gemma, n, copied, capacity, strategy):
    """With 256-token blocks, mlx-lm's buffer of a 200-token prefill (256 slots) is exactly its
    run: stored by one copy of the whole buffer, spare slots included. At 256 tokens the buffer
    is full and the run needs room for the next token: its tokens, then a zero tail. Either way
    the restored cache continues exactly."""
    tiny = TinyModel(gemma.name, gemma.model, ModelCacheSpec.from_model(gemma.model, block_tokens=256), make_prompt_cache)
    tokens = prompt(n + 10, seed=n)
    original = tiny.prefill(tokens[:n])
    layer_id = tiny.spec.layer_types.index("global")
    jobs, _ = layer_copy_jobs(original[layer_id], tiny.spec, layer_id, capacity)
    assert [([(a, z) for _, a, z in pieces], tokens_) for pieces, tokens_ in jobs] == [([(0, copied)], capacity)] * 2
    engine = engine_for(tiny.spec)
    engine.store("agent", original)
    restored = engine.reconstruct("agent", strategy)
    assert restored[layer_id].keys.shape[2] == capacity
    assert_caches_equal(original, restored)
    assert_same_continuation(tiny, original, restored, tokens[n:])


def test_the_seeds_name_restores_zero_copy(gemma):
    engine = engine_for(gemma.spec)
    original = gemma.prefill(prompt(13))
    table = engine.store("agent", original)
    restored = engine._reconstruct_cache(table)
    assert restored[0].keys is run_of(engine, "agent", 0).keys
    assert_caches_equal(original, restored)


def test_the_logits_oracle_tells_a_wrong_cache_apart(gemma):
    tokens = prompt(20, seed=5)
    engine = engine_for(gemma.spec)
    engine.store("agent", gemma.prefill(tokens[:12]))
    other = gemma.prefill(prompt(12, seed=6))
    assert max_logit_gap(gemma.model, engine.reconstruct("agent"), other, tokens[12:13]) > 1e-3


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("name", ["gemma3-w8", "gemma3-w6", "qwen3-keep4"])
def test_a_wrapped_ring_restores_with_its_ring_index(tiny_models, name, strategy):
    tiny = tiny_models[name]
    tokens = prompt(40, seed=7)
    original = tiny.prefill(tokens[:3])
    for i in range(3, 19):  # one token at a time, past the window: the ring wraps
        tiny.model(tokens[None, i : i + 1], cache=original)
    sliding = [c for c in original if hasattr(c, "_idx")]
    window, keep = sliding[0].max_size, sliding[0].keep
    assert keep < sliding[0]._idx < window and sliding[0].offset > window, "set-up: the ring index is mid-ring"
    engine = engine_for(tiny.spec)
    engine.store("agent", original)
    restored = engine.reconstruct("agent", strategy)
    assert [c._idx for c in restored if hasattr(c, "_idx")] == [c._idx for c in sliding]
    assert_caches_equal(original, restored)
    assert_same_continuation(tiny, original, restored, tokens[19:])


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("name", ["gemma3-w8", "gemma3-w6", "qwen3-keep4"])
def test_a_cache_between_prefill_chunks_restores(tiny_models, name, strategy):
    tiny = tiny_models[name]
    tokens = prompt(40, seed=8)
    original = tiny.prefill(tokens[:17], chunks=[5, 12])
    sliding = next(c for c in original if hasattr(c, "_idx"))
    assert sliding.keys.shape[2] > sliding.max_size, "set-up: the buffer is longer than the window"
    engine = engine_for(tiny.spec)
    engine.store("agent", original)
    restored = engine.reconstruct("agent", strategy)
    assert_caches_equal(original, restored)
    assert_same_continuation(tiny, original, restored, tokens[17:])


@pytest.mark.parametrize("name", MODELS)
def test_park_and_resume_rounds_match_an_uninterrupted_run(tiny_models, name):
    """Each round: restore zero-copy, decode a few tokens, store back. Same logits as never parking."""
    tiny = tiny_models[name]
    tokens = prompt(60, seed=9)
    reference = tiny.prefill(tokens[:7])
    engine = engine_for(tiny.spec)
    engine.store("agent", tiny.prefill(tokens[:7]))
    position = 7
    for size in [1, 1, 3, 1, 6, 1, 1, 2]:
        cache = engine.reconstruct("agent")
        step = tokens[position : position + size]
        gap = max_logit_gap(tiny.model, reference, cache, step)
        assert gap <= 1e-5, f"{tiny}: at {position} tokens the logits differ by {gap}"
        engine.store("agent", cache)
        position += size
    assert_caches_equal(reference, engine.reconstruct("agent", "gather"))


# --- zero-copy facts --------------------------------------------------------------------------
def test_default_restore_hands_over_the_pool_run_buffers(gemma):
    engine = engine_for(gemma.spec)
    engine.store("agent", gemma.prefill(prompt(13)))
    restored = engine.reconstruct("agent")
    for layer_id, layer_cache in enumerate(restored):
        run = run_of(engine, "agent", layer_id)
        assert layer_cache.keys is run.keys and layer_cache.values is run.values


@pytest.mark.parametrize("strategy", ["gather", "concat"])
def test_copying_strategies_return_private_arrays_the_cache_cannot_write_through(gemma, strategy):
    tokens = prompt(30, seed=10)
    engine = engine_for(gemma.spec)
    original = gemma.prefill(tokens[:13])
    engine.store("agent", original)
    restored = engine.reconstruct("agent", strategy)
    for layer_id, layer_cache in enumerate(restored):
        run = run_of(engine, "agent", layer_id)
        assert layer_cache.keys is not run.keys and layer_cache.values is not run.values
    for i in range(13, 25):  # writes into every layer of the restored cache, wrapping the rings
        gemma.model(tokens[None, i : i + 1], cache=restored)
    assert_caches_equal(original, engine.reconstruct("agent", strategy))
    assert_caches_equal(original, engine.reconstruct("agent"))


def _big_layer_spec(kind):
    """One 16 MiB layer (keys + values at 4096 tokens, float32): big enough to see a copy."""
    layer = LayerSpec("global") if kind == "global" else LayerSpec("sliding_window", window=4096)
    return ModelCacheSpec(layers=(layer,), n_kv_heads=8, k_head_dim=64, v_head_dim=64,
                          dtype=mx.float32, block_tokens=256)


def _decode_step(cache):
    token = mx.ones((1, 8, 1, 64), mx.float32)
    mx.eval(token)
    return lambda: mx.eval(cache[0].update_and_fetch(token, token), cache[0].keys, cache[0].values)


def _stored_engine(spec, n):
    engine = engine_for(spec, total_blocks=64)
    engine.store("agent", random_cache(spec, n))  # the stored cache is dropped at once
    gc.collect()
    return engine


@pytest.mark.parametrize("words_from_bytes", [0, float("inf")])  # stored as words / as elements
@pytest.mark.parametrize("kind,n", [("global", 4000), ("sliding_window", 5000)])
def test_first_decode_step_after_zero_copy_restore_writes_in_place(kind, n, words_from_bytes, monkeypatch):
    monkeypatch.setattr(copying, "WORDS_FROM_BYTES", {"cpu": words_from_bytes, "gpu": words_from_bytes})
    spec = _big_layer_spec(kind)
    layer_bytes = spec.kv_bytes(4096)
    restored = _stored_engine(spec, n).reconstruct("agent")
    assert bytes_allocated_during(_decode_step(restored)) < layer_bytes / 8


def test_the_in_place_measure_sees_a_whole_layer_copy():
    """Control: with a second reference to the buffer, MLX must copy it on write; the measure sees it."""
    spec = _big_layer_spec("global")
    restored = _stored_engine(spec, 4000).reconstruct("agent")
    second_reference = restored[0].keys[..., :1, :]  # noqa: F841 (keeps the buffer shared)
    assert bytes_allocated_during(_decode_step(restored)) >= spec.kv_bytes(4096) / 2


@pytest.mark.parametrize("strategy", ["gather", "concat"])
def test_copying_strategies_copy_at_restore_not_at_first_step(strategy):
    """``gather``/``concat`` pay their copy inside ``reconstruct`` (what a timed restore measures);
    the private copy they return then decodes in place."""
    spec = _big_layer_spec("global")
    layer_bytes = spec.kv_bytes(4096)
    engine = _stored_engine(spec, 4000)
    restored = []
    assert bytes_allocated_during(lambda: restored.extend(engine.reconstruct("agent", strategy))) >= layer_bytes
    assert bytes_allocated_during(_decode_step(restored)) < layer_bytes / 8


def test_storing_a_restored_then_advanced_cache_adopts_its_blocks(gemma):
    tokens = prompt(30, seed=11)
    engine = engine_for(gemma.spec)
    engine.store("agent", gemma.prefill(tokens[:9]))
    ids_before = [b.block_id for b in engine.agent_blocks("agent").all_blocks()]
    used_before = engine.pool.num_used_blocks
    cache = engine.reconstruct("agent")
    gemma.model(tokens[None, 9:10], cache=cache)  # 10 tokens still fit the runs (room for 12)
    table = engine.store("agent", cache)
    assert [b.block_id for b in table.all_blocks()] == ids_before
    assert engine.pool.num_used_blocks == used_before
    assert table.total_tokens == 10
    assert_caches_equal(cache, engine.reconstruct("agent", "gather"))


def test_storing_an_advanced_cache_that_outgrew_its_runs_copies_into_new_blocks(gemma):
    tokens = prompt(30, seed=12)
    engine = engine_for(gemma.spec)
    engine.store("agent", gemma.prefill(tokens[:11]))
    cache = engine.reconstruct("agent")
    gemma.model(tokens[None, 11:12], cache=cache)  # 12 tokens: a global layer needs a 4th block
    table = engine.store("agent", cache)
    assert len(table.blocks_for_layer(2)) == gemma.spec.blocks_needed(2, 12) == 4
    assert engine.pool.num_used_blocks == table.num_blocks
    assert_caches_equal(cache, engine.reconstruct("agent", "gather"))


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_restoring_again_after_the_lent_cache_advanced_raises_until_stored(gemma, strategy):
    tokens = prompt(30, seed=13)
    engine = engine_for(gemma.spec)
    engine.store("agent", gemma.prefill(tokens[:9]))
    engine.reconstruct("agent")  # not advanced: restoring again is fine
    lent = engine.reconstruct("agent")
    gemma.model(tokens[None, 9:10], cache=lent)
    with pytest.raises(AgentOnLoanError, match=r"'agent'.*9 -> 10 tokens.*store"):
        engine.reconstruct("agent", strategy)
    engine.store("agent", lent)
    assert_caches_equal(lent, engine.reconstruct("agent", strategy))


def test_a_lent_cache_dropped_after_advancing_still_blocks_restore(gemma):
    tokens = prompt(30, seed=14)
    engine = engine_for(gemma.spec)
    engine.store("agent", gemma.prefill(tokens[:9]))
    lent = engine.reconstruct("agent")
    gemma.model(tokens[None, 9:10], cache=lent)
    del lent
    gc.collect()
    with pytest.raises(AgentOnLoanError):
        engine.reconstruct("agent")


def test_a_cache_stored_back_keeps_its_data_but_not_the_pools_arrays(gemma):
    """Parking hands the cache back holding views of its data: its next write copies (so it can
    never write into the runs it was parked in), and the runs are the arrays it held."""
    tokens = prompt(30, seed=15)
    engine = engine_for(gemma.spec)
    engine.store("agent", gemma.prefill(tokens[:9]))
    cache = engine.reconstruct("agent")
    gemma.model(tokens[None, 9:10], cache=cache)
    held = [(c.keys, c.values) for c in cache]
    table = engine.store("agent", cache)
    for layer_id, (layer_cache, (keys, values)) in enumerate(zip(cache, held)):
        run = table.whole_run(layer_id)
        assert run.keys is keys and run.values is values
        assert layer_cache.keys is not run.keys and layer_cache.values is not run.values
    assert_caches_equal(engine.reconstruct("agent", "gather"), cache)


def test_parking_a_cache_that_mlx_lm_grew_adopts_the_grown_buffer():
    """Turn after turn an agent restores, decodes past its run (mlx-lm grows the layer into a new
    buffer of 256 more slots: one 256-token block), and parks again: the grown buffers become the
    agent's runs without a copy, and the model continues as if never parked."""
    from conftest import make_gemma

    model = make_gemma(window=600)
    spec = ModelCacheSpec.from_model(model, block_tokens=256)
    engine = BlockPoolBatchEngine(BlockPool(spec, total_blocks=60))
    tokens = prompt(700, seed=21)
    reference = make_prompt_cache(model)
    model(tokens[None, :500], cache=reference)
    engine.store("agent", reference)
    n = 500
    for _turn in range(3):
        cache = engine.reconstruct("agent")
        for _ in range(40):  # crosses 512 on the first turn: global and sliding layers grow
            assert max_logit_gap(model, reference, cache, tokens[n : n + 1]) == 0.0
            n += 1
        table, grown = [], [c.keys for c in cache]
        assert bytes_allocated_during(lambda: table.append(engine.store("agent", cache))) == 0
        for layer_id, keys in enumerate(grown):
            assert table[0].whole_run(layer_id).keys is keys
        assert engine.pool.num_used_blocks == table[0].num_blocks == spec.total_blocks_needed(n)
    assert_caches_equal(reference, engine.reconstruct("agent", "gather"))
