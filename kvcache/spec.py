"""The KV-cache layout of a model: what every layer stores per token, and in how many blocks.

A ``ModelCacheSpec`` is immutable. Layer ``i`` is either ``"global"`` (keeps every token) or
``"sliding_window"`` (keeps only the last ``window`` tokens, plus ``keep`` sink tokens at the
front, as mlx-lm's ``RotatingKVCache`` does). All layers share one KV-head count, key and value
head dims and dtype.

Block accounting (``blocks_needed``) always leaves room for the *next* token, so that a restored
cache decodes in place instead of reallocating (and copying) a whole layer on its first step::

    global, n = 512, block_tokens = 256:  [blk0: 0..255][blk1: 256..511][blk2: 512 (free) ...]
    sliding, window = 1024:               [blk0][blk1][blk2][blk3]  = the ring of 1024 slots
"""

from dataclasses import dataclass
from functools import cached_property

import mlx.core as mx

from .errors import SpecError
from .mlx_lm_caches import MAX_KV_SIZE_KEEP, makes_its_own_cache, model_layer_kinds
from .presets import PRESETS

GLOBAL = "global"
SLIDING = "sliding_window"

_DTYPES = {"bfloat16": mx.bfloat16, "float16": mx.float16, "float32": mx.float32}


@dataclass(frozen=True)
class LayerSpec:
    """One layer's cache kind; ``window`` and ``keep`` are set for sliding layers only."""

    kind: str
    window: int | None = None
    keep: int = 0

    @property
    def is_sliding(self):
        return self.kind == SLIDING


@dataclass(frozen=True)
class ModelCacheSpec:
    """A model's KV-cache layout (see module docstring)."""

    layers: tuple
    n_kv_heads: int
    k_head_dim: int
    v_head_dim: int
    dtype: mx.Dtype = mx.bfloat16
    block_tokens: int = 256

    def __post_init__(self):
        if not isinstance(self.block_tokens, int) or self.block_tokens < 1:
            raise SpecError(
                f"block_tokens={self.block_tokens!r} does not fit: pass a positive whole number "
                "of tokens per block (256 is the default)"
            )
        for i, layer in enumerate(self.layers):
            if layer.is_sliding and (layer.window is None or layer.window <= layer.keep):
                raise SpecError(f"layer {i}: a sliding layer needs a window larger than keep")

    # --- constructors -------------------------------------------------------------------
    @classmethod
    def from_model(cls, model, block_tokens=256, dtype=None, max_kv_size=None):
        """Read the layout from an mlx-lm model: the caches ``make_prompt_cache(model,
        max_kv_size)`` makes, and the model's ``args``.

        As there, ``max_kv_size`` makes every layer a ``RotatingKVCache`` of that size keeping
        4 sink tokens, unless the model makes its own caches (Gemma 3, Llama, gpt-oss).
        """
        _check_max_kv_size(max_kv_size)
        layers = tuple(
            LayerSpec(GLOBAL) if kind is None else LayerSpec(SLIDING, window=kind[0], keep=kind[1])
            for kind in model_layer_kinds(model, max_kv_size)
        )
        args = getattr(model, "args", None)
        if args is None:
            raise SpecError(f"{type(model).__name__} has no .args: use ModelCacheSpec.from_config")
        n_kv_heads, head_dim = _head_sizes(
            lambda key: getattr(args, key, None), f"{type(model).__name__}.args", "use ModelCacheSpec.from_config"
        )
        return cls(
            layers=layers,
            n_kv_heads=n_kv_heads,
            k_head_dim=head_dim,
            v_head_dim=head_dim,
            dtype=dtype or _model_dtype(model),
            block_tokens=block_tokens,
        )

    @classmethod
    def from_config(cls, config, block_tokens=256, max_kv_size=None):
        """Read the layout from a Hugging Face ``config.json`` dict (``text_config`` too).

        ``max_kv_size`` as in ``from_model``: whether the model makes its own caches is read
        from mlx-lm's model class for the config's ``model_type``.
        """
        config = config.get("text_config", config)
        _check_max_kv_size(max_kv_size)
        fix = "pass the model's config.json"
        n_layers = _size(config.get, "num_hidden_layers", "model config", fix)
        n_kv_heads, head_dim = _head_sizes(config.get, "model config", fix)
        dtype_name = config.get("torch_dtype") or config.get("dtype") or "bfloat16"
        if dtype_name not in _DTYPES:
            raise SpecError(f"model config dtype {dtype_name!r} is not one of {sorted(_DTYPES)}")
        if max_kv_size is not None and not makes_its_own_cache(config):
            layers = (LayerSpec(SLIDING, window=max_kv_size, keep=MAX_KV_SIZE_KEEP),) * n_layers
        else:
            layers = _layers_from_config(config, n_layers)
        return cls(
            layers=layers,
            n_kv_heads=n_kv_heads,
            k_head_dim=head_dim,
            v_head_dim=head_dim,
            dtype=_DTYPES[dtype_name],
            block_tokens=block_tokens,
        )

    @classmethod
    def from_preset(cls, name, block_tokens=256):
        """A published model's layout by short name; ``PRESETS`` lists them."""
        if name not in PRESETS:
            raise SpecError(f"unknown preset {name!r}: choose one of {', '.join(sorted(PRESETS))}")
        return cls.from_config(PRESETS[name], block_tokens=block_tokens)

    # --- sizes --------------------------------------------------------------------------
    @property
    def n_layers(self):
        return len(self.layers)

    @property
    def layer_types(self):
        """Each layer's kind, ``"global"`` or ``"sliding_window"``, as the seed names them."""
        return [layer.kind for layer in self.layers]

    @property
    def bytes_per_token_per_layer(self):
        return self.n_kv_heads * (self.k_head_dim + self.v_head_dim) * self.dtype.size

    @property
    def bytes_per_block(self):
        """Bytes of one block: keys and values of ``block_tokens`` tokens of one layer."""
        return self.bytes_per_token_per_layer * self.block_tokens

    @property
    def bytes_per_token(self):
        """Bytes one token adds to a global-only cache (every layer)."""
        return self.bytes_per_token_per_layer * self.n_layers

    def kv_bytes(self, total_tokens):
        """Bytes of KV data a context holds: every token on global layers, the window on sliding."""
        return sum(self.tokens_held(i, total_tokens) for i in range(self.n_layers)) * (
            self.bytes_per_token_per_layer
        )

    @cached_property
    def windows(self):
        """Each layer's window, None on global layers (read on every store and restore)."""
        return tuple(layer.window if layer.is_sliding else None for layer in self.layers)

    def tokens_held(self, layer_id, total_tokens):
        """How many of ``total_tokens`` layer ``layer_id`` keeps."""
        window = self.windows[layer_id]
        return total_tokens if window is None else min(total_tokens, window)

    def blocks_needed(self, layer_id, total_tokens):
        """Blocks layer ``layer_id`` holds for a context: its tokens plus the next one's slot.

        Sliding layers never hold more than their window: ``ceil(window / block_tokens)``.
        """
        window = self.windows[layer_id]
        slots = total_tokens + 1 if window is None else min(total_tokens + 1, window)
        return -(-slots // self.block_tokens)

    def total_blocks_needed(self, total_tokens):
        """Blocks a context of ``total_tokens`` needs on all layers together (what a store takes)."""
        return sum(n_blocks for n_blocks, _ in self.run_sizes(total_tokens))

    def capacity_tokens(self, layer_id, n_blocks):
        """Token slots a run of ``n_blocks`` blocks materializes (a sliding ring stops at its window)."""
        window = self.windows[layer_id]
        slots = n_blocks * self.block_tokens
        return slots if window is None else min(slots, window)

    def run_sizes(self, total_tokens):
        """Per layer, ``(blocks_needed, capacity_tokens)`` of a run for a context (remembered:
        a store asks for every layer each time)."""
        sizes = self._run_sizes.get(total_tokens)
        if sizes is None:
            if len(self._run_sizes) >= 1024:
                self._run_sizes.clear()
            sizes = []
            for layer_id in range(len(self.layers)):
                n_blocks = self.blocks_needed(layer_id, total_tokens)
                sizes.append((n_blocks, self.capacity_tokens(layer_id, n_blocks)))
            sizes = self._run_sizes[total_tokens] = tuple(sizes)
        return sizes

    @cached_property
    def _run_sizes(self):
        return {}

    def kv_shape(self, n_tokens):
        """Shapes ``(keys, values)`` of ``n_tokens`` of one layer, batch of one."""
        return (
            (1, self.n_kv_heads, n_tokens, self.k_head_dim),
            (1, self.n_kv_heads, n_tokens, self.v_head_dim),
        )


def _head_sizes(get, source, fix):
    """``(n_kv_heads, head_dim)`` read through ``get(key)`` (None for a key that is missing or
    null) as mlx-lm reads them: KV heads default to the attention heads, head_dim to
    hidden_size // num_attention_heads. A SpecError names a missing or bad key."""
    n_kv_heads = _size(get, "num_key_value_heads", source, fix, required=False)
    head_dim = _size(get, "head_dim", source, fix, required=False)
    n_heads = _size(get, "num_attention_heads", source, fix, required=n_kv_heads is None or head_dim is None,
                     alternative="head_dim" if n_kv_heads is not None else None)
    if head_dim is None:
        head_dim = _size(get, "hidden_size", source, fix, alternative="head_dim") // n_heads
    return n_kv_heads or n_heads, head_dim


def _size(get, key, source, fix, required=True, alternative=None):
    """``get(key)``, a positive whole number, or None when it is missing and not ``required``;
    else a SpecError naming ``key`` (and the ``alternative`` key that would make it unneeded)."""
    value = get(key)
    if value is None:
        if not required:
            return None
        instead = f" (or {alternative!r})" if alternative else ""
        raise SpecError(f"{source} lacks {key!r}{instead}: {fix}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{source} has {key}={value!r}: it must be a positive whole number; {fix}")
    return value


def _check_max_kv_size(max_kv_size):
    if max_kv_size is not None and (not isinstance(max_kv_size, int) or max_kv_size <= MAX_KV_SIZE_KEEP):
        raise SpecError(
            f"max_kv_size={max_kv_size!r}: give the whole number of tokens make_prompt_cache was given "
            f"(more than the {MAX_KV_SIZE_KEEP} sink tokens mlx-lm keeps)"
        )


def _layers_from_config(config, n_layers):
    window = config.get("sliding_window")
    if config.get("layer_types"):
        kinds = [SLIDING if t == "sliding_attention" else GLOBAL for t in config["layer_types"]]
    elif "sliding_window_pattern" in config and window:
        pattern = config["sliding_window_pattern"]
        kinds = [GLOBAL if (i + 1) % pattern == 0 else SLIDING for i in range(n_layers)]
    elif window and config.get("use_sliding_window", False):
        kinds = [SLIDING] * n_layers
    else:
        kinds = [GLOBAL] * n_layers
    if len(kinds) != n_layers:
        raise SpecError(f"model config has {len(kinds)} layer_types for {n_layers} layers")
    return tuple(LayerSpec(k, window=window) if k == SLIDING else LayerSpec(k) for k in kinds)


def _model_dtype(model):
    from mlx.utils import tree_flatten

    for _, p in tree_flatten(model.parameters()):
        if mx.issubdtype(p.dtype, mx.floating):
            return p.dtype
    return mx.bfloat16
