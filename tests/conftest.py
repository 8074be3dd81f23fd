"""Shared fixtures: tiny seeded float32 mlx-lm models, small specs, and oracles for comparing caches.

The models are real mlx-lm model code with random weights built from config dicts (nothing is
downloaded). The oracles here read mlx-lm caches through mlx-lm's own code, never through
kvcache's, so that a test compares kvcache against something independent of it.
"""

import gc
import subprocess

import mlx.core as mx
import pytest
from mlx_lm.models import gemma3_text, llama, qwen3
from mlx_lm.models.cache import RotatingKVCache, make_prompt_cache

from kvcache import GLOBAL, SLIDING, LayerSpec, ModelCacheSpec

VOCAB = 100
LOGITS_TOLERANCE = 1e-5


def _seeded(make_model, seed):
    mx.random.seed(seed)
    model = make_model()
    mx.eval(model.parameters())
    return model


def make_gemma(window=8, pattern=3, seed=0):
    """Gemma 3 text: sliding layers with ``window`` and a global layer every ``pattern``-th."""
    args = gemma3_text.ModelArgs(
        model_type="gemma3_text", hidden_size=64, num_hidden_layers=6, intermediate_size=128,
        num_attention_heads=4, head_dim=16, rms_norm_eps=1e-6, vocab_size=VOCAB,
        num_key_value_heads=2, sliding_window=window, sliding_window_pattern=pattern,
    )
    return _seeded(lambda: gemma3_text.Model(args), seed)


def make_llama(seed=1):
    """Llama: every layer global (its own ``make_cache`` gives ``KVCache`` only)."""
    args = llama.ModelArgs(
        model_type="llama", hidden_size=64, num_hidden_layers=3, intermediate_size=128,
        num_attention_heads=4, rms_norm_eps=1e-6, vocab_size=VOCAB, num_key_value_heads=2,
    )
    return _seeded(lambda: llama.Model(args), seed)


def make_qwen3(seed=2):
    """Qwen3 has no ``make_cache``: ``make_prompt_cache(model, max_kv_size=W)`` gives
    ``RotatingKVCache(W, keep=4)`` on every layer, the one way mlx-lm makes ``keep > 0``."""
    args = qwen3.ModelArgs(
        model_type="qwen3", hidden_size=64, num_hidden_layers=2, intermediate_size=128,
        num_attention_heads=4, rms_norm_eps=1e-6, vocab_size=VOCAB, num_key_value_heads=2,
        max_position_embeddings=4096, head_dim=16, tie_word_embeddings=True, rope_theta=10000.0,
    )
    return _seeded(lambda: qwen3.Model(args), seed)


QWEN3_WINDOW, QWEN3_KEEP = 6, 4


class TinyModel:
    """A model, the spec of its cache, and how to make a fresh cache for it."""

    def __init__(self, name, model, spec, make_cache):
        self.name, self.model, self.spec, self._make_cache = name, model, spec, make_cache

    def new_cache(self):
        return self._make_cache(self.model)

    def prefill(self, tokens, chunks=None):
        """A fresh cache after ``tokens``; ``chunks`` are the prefill's chunk sizes (one chunk by default)."""
        cache = self.new_cache()
        start = 0
        for size in chunks or [len(tokens)]:
            self.model(tokens[None, start : start + size], cache=cache)
            start += size
        assert start == len(tokens), "chunks must add up to the prompt"
        return cache

    def __repr__(self):
        return self.name


def _tiny_models():
    gemma = make_gemma(window=8)
    gemma6 = make_gemma(window=6, pattern=2, seed=3)
    llama_model = make_llama()
    qwen = make_qwen3()
    qwen_layer = LayerSpec(SLIDING, window=QWEN3_WINDOW, keep=QWEN3_KEEP)
    return {
        "gemma3-w8": TinyModel("gemma3-w8", gemma, ModelCacheSpec.from_model(gemma, block_tokens=4), make_prompt_cache),
        "gemma3-w6": TinyModel("gemma3-w6", gemma6, ModelCacheSpec.from_model(gemma6, block_tokens=4), make_prompt_cache),
        "llama": TinyModel("llama", llama_model, ModelCacheSpec.from_model(llama_model, block_tokens=4), make_prompt_cache),
        "qwen3-keep4": TinyModel(
            "qwen3-keep4", qwen,
            ModelCacheSpec(layers=(qwen_layer,) * 2, n_kv_heads=2, k_head_dim=16, v_head_dim=16,
                           dtype=mx.float32, block_tokens=4),
            lambda m: make_prompt_cache(m, max_kv_size=QWEN3_WINDOW),
        ),
    }


@pytest.fixture(scope="session")
def tiny_models():
    return _tiny_models()


@pytest.fixture(scope="session")
def gemma(tiny_models):
    return tiny_models["gemma3-w8"]


def prompt(n, seed=0):
    """``n`` seeded random token ids."""
    return mx.random.randint(0, VOCAB, (n,), key=mx.random.key(seed))


def max_logit_gap(model, cache_a, cache_b, tokens):
    """Feeds ``tokens`` (1-D) to both caches; the largest |logit difference|."""
    a = model(tokens[None], cache=cache_a)
    b = model(tokens[None], cache=cache_b)
    return mx.abs(a - b).max().item()


def assert_same_continuation(tiny, original, restored, tokens):
    """Single-token steps, a multi-token chunk, then single steps again: same logits every call."""
    steps = [tokens[i : i + 1] for i in range(3)] + [tokens[3:8]] + [tokens[i : i + 1] for i in range(8, 10)]
    for i, step in enumerate(steps):
        gap = max_logit_gap(tiny.model, original, restored, step)
        assert gap <= LOGITS_TOLERANCE, f"{tiny}: call {i} ({step.size} tokens) logits differ by {gap}"


def held_tokens(layer_cache):
    """The keys and values a layer attends to, in temporal order, read with mlx-lm's own code."""
    if isinstance(layer_cache, RotatingKVCache):
        keys = layer_cache._temporal_order(layer_cache.keys)
        values = layer_cache._temporal_order(layer_cache.values)
        size, window, keep = keys.shape[2], layer_cache.max_size, layer_cache.keep
        if size > window:  # between prefill chunks: mlx-lm keeps the sinks and the last tokens
            keys = mx.concatenate([keys[..., :keep, :], keys[..., size - (window - keep) :, :]], axis=2)
            values = mx.concatenate([values[..., :keep, :], values[..., size - (window - keep) :, :]], axis=2)
        return keys[..., : layer_cache.offset, :], values[..., : layer_cache.offset, :]
    return layer_cache.keys[..., : layer_cache.offset, :], layer_cache.values[..., : layer_cache.offset, :]


def arrays_equal(a, b):
    return bool(mx.array_equal(a, b).item())


def assert_caches_equal(stored, restored):
    """Same token count on every layer and the same held keys and values, bit for bit."""
    assert len(stored) == len(restored)
    for i, (a, b) in enumerate(zip(stored, restored)):
        assert a.offset == b.offset, f"layer {i}: offset {b.offset} != {a.offset}"
        (ka, va), (kb, vb) = held_tokens(a), held_tokens(b)
        assert ka.shape == kb.shape, f"layer {i}: held {kb.shape} != {ka.shape}"
        assert arrays_equal(ka, kb) and arrays_equal(va, vb), f"layer {i}: data differs"


def small_spec(block_tokens=4, window=6, keep=0, dtype=mx.float32, n_kv_heads=2, head_dim=8):
    """A three-layer spec (global, sliding, global) with tiny shapes."""
    sliding = LayerSpec(SLIDING, window=window, keep=keep)
    return ModelCacheSpec(
        layers=(LayerSpec(GLOBAL), sliding, LayerSpec(GLOBAL)), n_kv_heads=n_kv_heads,
        k_head_dim=head_dim, v_head_dim=head_dim, dtype=dtype, block_tokens=block_tokens,
    )


def bytes_allocated_during(fn):
    """Bytes MLX allocated beyond what was live before ``fn()`` ran (0 if nothing new)."""
    gc.collect()
    mx.synchronize()
    before = mx.get_active_memory()
    mx.reset_peak_memory()  # the peak restarts from 0 and rises only on allocation
    fn()
    mx.synchronize()
    return max(0, mx.get_peak_memory() - before)


def git(repo, *args):
    """Run git in ``repo`` (as a throwaway committer); its stripped stdout."""
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def asv_repo(repo, asv_conf):
    """A new git repository at ``repo`` (branch main, no commits) holding ``asv_conf`` as asv.conf.json."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "asv.conf.json").write_text(asv_conf)
    return repo
