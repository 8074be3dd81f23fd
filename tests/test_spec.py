"""ModelCacheSpec: read from models, configs and presets; sizes and block accounting."""

import math

import mlx.core as mx
import pytest

from kvcache import GLOBAL, SLIDING, LayerSpec, ModelCacheSpec, SpecError

from conftest import make_gemma, make_llama

MiB = 2**20

# FACTS.md, "Model shapes": layers, global layer indices, KV heads, head_dim, window, KV MiB at 8K (bf16)
PUBLISHED = {
    "gemma3-12b": (48, list(range(5, 48, 6)), 8, 256, 1024, 832),
    "gemma3-1b": (26, [5, 11, 17, 23], 1, 256, 512, 43),
    "gemma3-4b": (34, [5, 11, 17, 23, 29], 4, 256, 1024, 276),
    "gemma3-27b": (62, list(range(5, 62, 6)), 16, 128, 1024, 1056),
    "gpt-oss-20b": (24, list(range(1, 24, 2)), 8, 64, 128, 195),
    "llama3-8b": (32, list(range(32)), 8, 128, None, 1024),
    "qwen3-8b": (36, list(range(36)), 8, 128, None, 1152),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_matches_the_published_shapes(name):
    n_layers, global_ids, kv_heads, head_dim, window, mib_at_8k = PUBLISHED[name]
    spec = ModelCacheSpec.from_preset(name)
    assert spec.n_layers == n_layers
    assert [i for i, kind in enumerate(spec.layer_types) if kind == GLOBAL] == global_ids
    assert spec.layer_types.count(SLIDING) == n_layers - len(global_ids)
    assert {layer.window for layer in spec.layers if layer.is_sliding} <= {window}
    assert (spec.n_kv_heads, spec.k_head_dim, spec.v_head_dim) == (kv_heads, head_dim, head_dim)
    assert spec.dtype == mx.bfloat16 and spec.block_tokens == 256
    assert spec.kv_bytes(8192) == mib_at_8k * MiB


def test_gemma3_12b_at_8k_needs_424_blocks():
    spec = ModelCacheSpec.from_preset("gemma3-12b")
    per_layer = [spec.blocks_needed(i, 8192) for i in range(spec.n_layers)]
    assert sum(per_layer) == 8 * 33 + 40 * 4 == 424
    assert spec.bytes_per_block == 256 * 8 * 256 * 2 * 2  # 2 MiB: 256 tokens of K and V


def test_gemma3_12b_sizes():
    spec = ModelCacheSpec.from_preset("gemma3-12b")
    assert spec.bytes_per_token_per_layer == 8 * 1024  # 8 heads x (256 + 256) x 2 bytes
    assert spec.tokens_held(5, 8192) == 8192 and spec.tokens_held(0, 8192) == 1024
    assert spec.tokens_held(0, 100) == 100
    assert spec.kv_shape(10) == ((1, 8, 10, 256), (1, 8, 10, 256))


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 7, 8, 100])
def test_global_blocks_leave_room_for_the_next_token(n):
    spec = ModelCacheSpec((LayerSpec(GLOBAL),), n_kv_heads=1, k_head_dim=2, v_head_dim=2, block_tokens=4)
    assert spec.blocks_needed(0, n) == math.ceil((n + 1) / 4)
    assert spec.capacity_tokens(0, spec.blocks_needed(0, n)) > n


@pytest.mark.parametrize("window,block_tokens", [(6, 4), (8, 4), (1024, 256), (5, 1), (3, 8)])
def test_sliding_blocks_are_capped_at_the_window(window, block_tokens):
    spec = ModelCacheSpec((LayerSpec(SLIDING, window=window),), n_kv_heads=1, k_head_dim=2, v_head_dim=2,
                          block_tokens=block_tokens)
    cap = math.ceil(window / block_tokens)
    assert [spec.blocks_needed(0, n) for n in (window - 1, window, window + 1, 100 * window)] == [cap] * 4
    assert spec.blocks_needed(0, 0) == 1
    assert spec.capacity_tokens(0, cap) == window  # the ring never materializes more than the window


def test_from_model_reads_tiny_gemma3():
    spec = ModelCacheSpec.from_model(make_gemma(window=8, pattern=3), block_tokens=4)
    assert spec.layer_types == [SLIDING, SLIDING, GLOBAL] * 2
    assert {layer.window for layer in spec.layers if layer.is_sliding} == {8}
    assert (spec.n_kv_heads, spec.k_head_dim, spec.v_head_dim, spec.dtype) == (2, 16, 16, mx.float32)
    assert spec.block_tokens == 4


def test_from_model_reads_tiny_llama_and_its_dtype():
    model = make_llama()
    spec = ModelCacheSpec.from_model(model)
    assert spec.layer_types == [GLOBAL] * 3
    assert (spec.n_kv_heads, spec.k_head_dim, spec.dtype, spec.block_tokens) == (2, 16, mx.float32, 256)
    model.set_dtype(mx.bfloat16)
    assert ModelCacheSpec.from_model(model).dtype == mx.bfloat16


def test_from_config_agrees_with_from_model():
    config = {
        "model_type": "gemma3_text", "num_hidden_layers": 6, "num_attention_heads": 4, "hidden_size": 64,
        "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 8, "sliding_window_pattern": 3,
        "torch_dtype": "float32",
    }
    from_model = ModelCacheSpec.from_model(make_gemma(window=8, pattern=3), block_tokens=4)
    assert ModelCacheSpec.from_config(config, block_tokens=4) == from_model
    assert ModelCacheSpec.from_config({"text_config": config}, block_tokens=4) == from_model


def test_from_config_layer_types_win_over_the_pattern():
    config = {
        "num_hidden_layers": 4, "num_attention_heads": 4, "hidden_size": 64, "sliding_window": 16,
        "sliding_window_pattern": 2,
        "layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention"],
    }
    spec = ModelCacheSpec.from_config(config)
    assert spec.layer_types == [GLOBAL, SLIDING, SLIDING, GLOBAL]
    assert spec.layers[1] == LayerSpec(SLIDING, window=16)
    assert (spec.n_kv_heads, spec.k_head_dim, spec.dtype) == (4, 16, mx.bfloat16)  # defaults


@pytest.mark.parametrize("use_sliding_window,kind", [(False, GLOBAL), (True, SLIDING), (None, GLOBAL)])
def test_from_config_use_sliding_window(use_sliding_window, kind):
    config = {"num_hidden_layers": 2, "num_key_value_heads": 2, "num_attention_heads": 4, "head_dim": 8,
              "sliding_window": 32}
    if use_sliding_window is not None:
        config["use_sliding_window"] = use_sliding_window
    assert ModelCacheSpec.from_config(config).layer_types == [kind] * 2


def test_spec_is_immutable():
    spec = ModelCacheSpec.from_preset("llama3-8b")
    with pytest.raises(AttributeError):
        spec.block_tokens = 16


# --- errors -------------------------------------------------------------------------------------
def test_unknown_preset_names_it_and_the_choices():
    with pytest.raises(SpecError, match=r"unknown preset 'gemma4-9b'.*gemma3-12b.*qwen3-8b"):
        ModelCacheSpec.from_preset("gemma4-9b")


@pytest.mark.parametrize("block_tokens", [0, -256, 2.5, "256", None])
def test_bad_block_tokens_is_refused(block_tokens):
    with pytest.raises(SpecError, match=r"block_tokens=.*positive whole number"):
        ModelCacheSpec.from_preset("llama3-8b", block_tokens=block_tokens)


def test_a_sliding_layer_needs_a_window_larger_than_keep():
    for layer in (LayerSpec(SLIDING), LayerSpec(SLIDING, window=4, keep=4)):
        with pytest.raises(SpecError, match=r"layer 1: a sliding layer needs a window larger than keep"):
            ModelCacheSpec((LayerSpec(GLOBAL), layer), n_kv_heads=1, k_head_dim=2, v_head_dim=2)


def test_config_missing_a_field_names_it():
    with pytest.raises(SpecError, match=r"lacks 'num_hidden_layers'.*config.json"):
        ModelCacheSpec.from_config({"num_attention_heads": 4, "hidden_size": 64})


LLAMA_LIKE = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64}


@pytest.mark.parametrize("config,message", [
    ({**LLAMA_LIKE, "num_attention_heads": None}, r"lacks 'num_attention_heads'"),  # null in config.json
    ({"num_hidden_layers": 2, "num_key_value_heads": 2, "hidden_size": 64}, r"lacks 'num_attention_heads'.*or 'head_dim'"),
    ({"num_hidden_layers": 2, "num_key_value_heads": 2, "num_attention_heads": 4}, r"lacks 'hidden_size'.*or 'head_dim'"),
    ({**LLAMA_LIKE, "num_hidden_layers": None}, r"lacks 'num_hidden_layers'"),
    ({**LLAMA_LIKE, "hidden_size": None}, r"lacks 'hidden_size'"),
    ({**LLAMA_LIKE, "num_hidden_layers": "2"}, r"num_hidden_layers='2'.*positive whole number"),
    ({**LLAMA_LIKE, "num_hidden_layers": 0}, r"num_hidden_layers=0"),
    ({**LLAMA_LIKE, "num_attention_heads": 0}, r"num_attention_heads=0"),
    ({**LLAMA_LIKE, "num_key_value_heads": 0}, r"num_key_value_heads=0"),
    ({**LLAMA_LIKE, "head_dim": 2.5}, r"head_dim=2.5"),
])
def test_config_with_a_missing_or_bad_size_names_the_key(config, message):
    with pytest.raises(SpecError, match=message):
        ModelCacheSpec.from_config(config)


def test_config_with_null_optional_sizes_falls_back_as_mlx_lm_does():
    spec = ModelCacheSpec.from_config({**LLAMA_LIKE, "num_key_value_heads": None, "head_dim": None})
    assert (spec.n_kv_heads, spec.k_head_dim) == (4, 16)


def test_from_model_whose_args_lack_the_heads_names_them():
    model = make_llama()
    del model.args.num_attention_heads
    with pytest.raises(SpecError, match=r"lacks 'num_attention_heads'"):
        ModelCacheSpec.from_model(model)


def test_config_with_an_unknown_dtype_names_it():
    with pytest.raises(SpecError, match=r"dtype 'int8' is not one of"):
        ModelCacheSpec.from_config({"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64,
                                    "torch_dtype": "int8"})


def test_config_whose_layer_types_disagree_with_the_layer_count():
    config = {"num_hidden_layers": 3, "num_attention_heads": 4, "hidden_size": 64, "sliding_window": 8,
              "layer_types": ["sliding_attention", "full_attention"]}
    with pytest.raises(SpecError, match=r"2 layer_types for 3 layers"):
        ModelCacheSpec.from_config(config)


def test_from_model_refuses_a_model_without_args():
    model = make_llama()
    del model.args
    with pytest.raises(SpecError, match=r"Model has no .args.*from_config"):
        ModelCacheSpec.from_model(model)


def test_total_blocks_needed_sums_every_layer():
    spec = ModelCacheSpec.from_preset("gemma3-12b")
    for n in (1, 255, 256, 8192, 10000):
        assert spec.total_blocks_needed(n) == sum(spec.blocks_needed(i, n) for i in range(spec.n_layers))


QWEN3_CONFIG = {
    "model_type": "qwen3", "num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64,
    "num_key_value_heads": 2, "head_dim": 16, "torch_dtype": "float32",
}


def test_max_kv_size_makes_every_layer_a_ring_with_four_sinks_as_make_prompt_cache_does():
    from conftest import make_qwen3

    spec = ModelCacheSpec.from_config(QWEN3_CONFIG, block_tokens=4, max_kv_size=8)
    assert spec.layers == (LayerSpec(SLIDING, window=8, keep=4),) * 2
    assert ModelCacheSpec.from_model(make_qwen3(), block_tokens=4, max_kv_size=8) == spec
    assert ModelCacheSpec.from_config(QWEN3_CONFIG, block_tokens=4).layer_types == [GLOBAL] * 2


@pytest.mark.parametrize("name", ["gemma3-12b", "gpt-oss-20b", "llama3-8b"])
def test_max_kv_size_changes_nothing_for_a_model_that_makes_its_own_cache(name):
    from kvcache.presets import PRESETS

    assert ModelCacheSpec.from_config(PRESETS[name], max_kv_size=512) == ModelCacheSpec.from_preset(name)


@pytest.mark.parametrize("config,max_kv_size,message", [
    (QWEN3_CONFIG, 4, r"max_kv_size=4: give the whole number of tokens make_prompt_cache was given \(more than the 4"),
    (QWEN3_CONFIG, "512", r"max_kv_size='512'"),
    ({k: v for k, v in QWEN3_CONFIG.items() if k != "model_type"}, 64, r"lacks 'model_type'"),
    ({**QWEN3_CONFIG, "model_type": "no_such_model"}, 64, r"model_type 'no_such_model' is not an mlx-lm model"),
])
def test_a_bad_max_kv_size_or_config_names_it(config, max_kv_size, message):
    with pytest.raises(SpecError, match=message):
        ModelCacheSpec.from_config(config, max_kv_size=max_kv_size)
