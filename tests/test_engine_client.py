"""The library as a client uses it: mlx-lm's own ``generate_step`` and ``batch_generate`` on
restored caches, for tiny random Gemma 3, Llama, gpt-oss and Qwen3 models.

The oracle is a native cache (the model's own prefill) continued by the same mlx-lm call:
same tokens and the same log-probabilities.
"""

import functools

import mlx.core as mx
import pytest
from mlx_lm.generate import batch_generate, generate_step
from mlx_lm.models import gpt_oss
from mlx_lm.models.cache import make_prompt_cache

from kvcache import STRATEGIES, AgentOnLoanError, BlockPool, BlockPoolBatchEngine, ModelCacheSpec, PoolExhaustedError

from conftest import VOCAB, TinyModel, _seeded, make_llama, make_qwen3, prompt

LOGPROB_TOLERANCE = 1e-4


def make_gpt_oss(seed=4):
    """gpt-oss: alternating sliding (window 6) and global layers, a sliding layer first."""
    args = gpt_oss.ModelArgs(
        num_hidden_layers=4, num_local_experts=4, num_experts_per_tok=2, vocab_size=VOCAB,
        hidden_size=64, intermediate_size=64, head_dim=16, num_attention_heads=4, num_key_value_heads=2,
        sliding_window=6, layer_types=["sliding_attention", "full_attention"] * 2,
    )
    return _seeded(lambda: gpt_oss.Model(args), seed)


@pytest.fixture(scope="module")
def models(tiny_models):
    gpt, qwen = make_gpt_oss(), tiny_models["qwen3-keep4"].model
    return {**tiny_models,
            "gpt-oss": TinyModel("gpt-oss", gpt, ModelCacheSpec.from_model(gpt, block_tokens=4), make_prompt_cache),
            "qwen3": TinyModel("qwen3", qwen, ModelCacheSpec.from_model(qwen, block_tokens=4), make_prompt_cache)}


# Qwen3 twice: its default cache (every layer global) and make_prompt_cache(model, max_kv_size=6)
MODELS = ["gemma3-w8", "gemma3-w6", "llama", "gpt-oss", "qwen3", "qwen3-keep4"]


def generated(tiny, cache, turn, max_tokens=8):
    """``generate_step`` (greedy) from ``cache`` after the prompt ``turn``: [(token, logprobs)]."""
    return [(int(token), logprobs) for token, logprobs in
            generate_step(turn, tiny.model, prompt_cache=cache, max_tokens=max_tokens)]


def assert_same_generation(expected, got, what):
    assert [t for t, _ in got] == [t for t, _ in expected], f"{what}: other tokens"
    gap = max(mx.abs(a - b).max().item() for (_, a), (_, b) in zip(expected, got))
    assert gap <= LOGPROB_TOLERANCE, f"{what}: log-probabilities differ by {gap}"


@functools.cache
def tokenizer():
    """A real Hugging Face tokenizer over the tiny vocabulary ("t0" .. "t99"), wrapped by mlx-lm."""
    from mlx_lm.tokenizer_utils import TokenizerWrapper
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({f"t{i}": i for i in range(VOCAB)}, unk_token="t0"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return TokenizerWrapper(PreTrainedTokenizerFast(tokenizer_object=words, eos_token=f"t{VOCAB - 1}"))


# --- every strategy continues like a native cache, through mlx-lm's generation APIs ---------------
@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("n", [5, 13, 30])  # inside a block and the windows; across both; many windows
@pytest.mark.parametrize("name", MODELS)
def test_generate_step_continues_a_restored_cache_like_a_native_one(models, name, n, strategy):
    tiny = models[name]
    tokens = prompt(n + 3, seed=n)
    engine = BlockPoolBatchEngine(BlockPool(tiny.spec, 200))
    engine.store("agent", tiny.prefill(tokens[:n]))
    expected = generated(tiny, tiny.prefill(tokens[:n]), tokens[n:])
    assert_same_generation(expected, generated(tiny, engine.reconstruct("agent", strategy), tokens[n:]), tiny)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("name", [m for m in MODELS if m != "qwen3-keep4"])
def test_batch_generate_continues_restored_caches_like_native_ones(models, name, strategy):
    """Not Qwen3 with ``max_kv_size``: mlx-lm's ``BatchRotatingKVCache`` has no sink tokens
    (``keep``), and ``batch_generate`` of native keep-4 caches past their window gives other
    tokens than ``generate_step`` of the same caches (mlx-lm 0.32.2)."""
    tiny = models[name]
    engine = BlockPoolBatchEngine(BlockPool(tiny.spec, 200))
    contexts = {"a": prompt(11, seed=1), "b": prompt(23, seed=2)}
    for agent, tokens in contexts.items():
        engine.store(agent, tiny.prefill(tokens))
    turns = [[5, 6, 7], [8, 9]]
    expected = batch_generate(tiny.model, tokenizer(), turns, [tiny.prefill(t) for t in contexts.values()],
                              max_tokens=6, return_token_ids=True).token_ids
    restored = [engine.reconstruct(agent, strategy) for agent in contexts]
    got = batch_generate(tiny.model, tokenizer(), turns, restored, max_tokens=6, return_token_ids=True).token_ids
    assert got == expected


@pytest.mark.parametrize("name", MODELS)
def test_three_turns_parked_between_turns_match_one_uninterrupted_run(models, name):
    tiny = models[name]
    tokens = prompt(40, seed=3)
    engine = BlockPoolBatchEngine(BlockPool(tiny.spec, 200))
    engine.store("agent", tiny.prefill(tokens[:7]))
    native = tiny.prefill(tokens[:7])
    for turn in [tokens[7:10], tokens[10:11], tokens[11:16]]:
        expected = generated(tiny, native, turn, max_tokens=5)
        cache = engine.reconstruct("agent")
        assert_same_generation(expected, generated(tiny, cache, turn, max_tokens=5), tiny)
        engine.store("agent", cache)


# --- two caches never share memory ------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_a_second_live_zero_copy_restore_raises_and_a_copy_can_be_had(models, name):
    tiny = models[name]
    tokens = prompt(30, seed=4)
    engine = BlockPoolBatchEngine(BlockPool(tiny.spec, 200))
    engine.store("B", tiny.prefill(tokens[:13]))
    expected = generated(tiny, tiny.prefill(tokens[:13]), tokens[13:15])
    first = engine.reconstruct("B")
    with pytest.raises(AgentOnLoanError, match=r"'B' is lent to a live zero-copy restore.*store\(agent_id, cache\)"
                                               r".*strategy='gather'"):
        engine.reconstruct("B")
    second = engine.reconstruct("B", "gather")
    assert_same_generation(expected, generated(tiny, first, tokens[13:15]), "the lent cache")
    assert_same_generation(expected, generated(tiny, second, tokens[13:15]), "the private copy")


def test_a_dropped_restore_that_never_moved_does_not_block_the_next(gemma):
    engine = BlockPoolBatchEngine(BlockPool(gemma.spec, 200))
    engine.store("B", gemma.prefill(prompt(13)))
    cache = engine.reconstruct("B")
    del cache
    engine.reconstruct("B")  # the same agent, lent again


@pytest.mark.parametrize("name", MODELS)
def test_a_cache_stored_back_and_used_again_cannot_write_into_the_next_restore(models, name):
    """Park a cache, restore the agent, then keep decoding the parked cache (a fork the client
    made): the restored cache must not see those writes."""
    tiny = models[name]
    tokens = prompt(40, seed=5)
    engine = BlockPoolBatchEngine(BlockPool(tiny.spec, 200))
    engine.store("B", tiny.prefill(tokens[:13]))
    parked = engine.reconstruct("B")
    generated(tiny, parked, tokens[13:15], max_tokens=3)
    engine.store("B", parked)  # 17 tokens
    native = tiny.prefill(tokens[:13])
    generated(tiny, native, tokens[13:15], max_tokens=3)
    expected = generated(tiny, native, tokens[20:22])
    restored = engine.reconstruct("B")
    generated(tiny, parked, tokens[30:31], max_tokens=4)  # the parked cache moves on in place: other tokens
    assert_same_generation(expected, generated(tiny, restored, tokens[20:22]), "the restored cache")


# --- a store counts the blocks the agent gives up -------------------------------------------------
def test_an_agent_that_grew_parks_again_in_a_pool_that_holds_its_new_state_only(tiny_models):
    """Llama (3 global layers), 16-token blocks: 70 tokens take 15 blocks, 100 tokens 21, the pool 22."""
    tiny = tiny_models["llama"]
    spec = ModelCacheSpec.from_model(tiny.model, block_tokens=16)
    assert spec.total_blocks_needed(70) == 15 and spec.total_blocks_needed(100) == 21
    tokens = prompt(110, seed=6)
    engine = BlockPoolBatchEngine(BlockPool(spec, 22))
    engine.store("a", tiny.prefill(tokens[:70]))
    cache = engine.reconstruct("a")
    tiny.model(tokens[None, 70:100], cache=cache)
    engine.store("a", cache)
    assert engine.pool.num_used_blocks == 21 and engine.agent_blocks("a").total_tokens == 100
    native = tiny.prefill(tokens[:100], chunks=[70, 30])  # the same computation (a GPU's sums depend on it)
    assert_same_generation(generated(tiny, native, tokens[100:102]),
                           generated(tiny, engine.reconstruct("a"), tokens[100:102]), tiny)


@pytest.mark.parametrize("name", ["gemma3-w8", "gpt-oss", "qwen3-keep4"])
def test_an_agent_of_unchanged_size_parks_again_in_a_pool_just_its_size(models, name):
    """mlx-lm rebuilds a sliding layer on a multi-token turn, so its run is copied, not adopted:
    the new run must be able to take the blocks the old one gives up."""
    tiny = models[name]
    tokens = prompt(60, seed=7)
    needed = tiny.spec.total_blocks_needed(40)
    assert needed == tiny.spec.total_blocks_needed(43), "set-up: the sizes are the same"
    engine = BlockPoolBatchEngine(BlockPool(tiny.spec, needed))
    engine.store("a", tiny.prefill(tokens[:40]))
    cache = engine.reconstruct("a")
    tiny.model(tokens[None, 40:43], cache=cache)
    engine.store("a", cache)
    assert engine.pool.num_used_blocks == needed
    native = tiny.prefill(tokens[:43], chunks=[40, 3])  # the same computation (a GPU's sums depend on it)
    assert_same_generation(generated(tiny, native, tokens[43:46]),
                           generated(tiny, engine.reconstruct("a"), tokens[43:46]), tiny)


def test_a_final_state_that_does_not_fit_raises_and_the_agent_keeps_what_it_had(tiny_models):
    tiny = tiny_models["llama"]
    spec = ModelCacheSpec.from_model(tiny.model, block_tokens=16)
    tokens = prompt(110, seed=8)
    engine = BlockPoolBatchEngine(BlockPool(spec, 20))
    engine.store("a", tiny.prefill(tokens[:70]))
    cache = engine.reconstruct("a")
    tiny.model(tokens[None, 70:100], cache=cache)  # needs 21 blocks
    with pytest.raises(PoolExhaustedError, match=r"asked for \d+ blocks for agent 'a'.*5 of 20 free and \d+ it gives up"):
        engine.store("a", cache)
    assert engine.pool.num_used_blocks == 15 and engine.agent_blocks("a").total_tokens == 70


# --- max_kv_size ------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("n", [3, 9, 20])
def test_a_max_kv_size_cache_is_described_stored_and_continued(strategy, n):
    model = make_qwen3()
    spec = ModelCacheSpec.from_model(model, block_tokens=4, max_kv_size=8)
    assert {(layer.window, layer.keep) for layer in spec.layers} == {(8, 4)}
    tokens = prompt(n + 3, seed=n)
    engine = BlockPoolBatchEngine(BlockPool(spec, 100))
    cache = make_prompt_cache(model, max_kv_size=8)
    model(tokens[None, :n], cache=cache)
    engine.store("agent", cache)
    native = make_prompt_cache(model, max_kv_size=8)
    model(tokens[None, :n], cache=native)
    assert_same_generation(generated(TinyModel("qwen3", model, spec, None), native, tokens[n:]),
                           generated(TinyModel("qwen3", model, spec, None), engine.reconstruct("agent", strategy),
                                     tokens[n:]), "qwen3 max_kv_size=8")


def test_max_kv_size_is_ignored_where_mlx_lm_ignores_it():
    """``make_prompt_cache`` uses a model's own ``make_cache`` when it has one (Llama, Gemma 3, gpt-oss)."""
    model = make_llama()
    assert ModelCacheSpec.from_model(model, max_kv_size=8) == ModelCacheSpec.from_model(model)
