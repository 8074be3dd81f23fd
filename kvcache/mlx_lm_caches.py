"""The one module that reads and writes mlx-lm cache objects, and the contract kvcache relies on.

What kvcache relies on (mlx-lm 0.32, ``mlx_lm/models/cache.py``; checked by the tests, which
read caches with mlx-lm's own code):

- A model's cache is a list with one cache object per layer: ``make_prompt_cache(model,
  max_kv_size)`` gives the model's own ``make_cache()`` when it has one (``max_kv_size`` is
  then ignored), else ``RotatingKVCache(max_kv_size, keep=4)`` on every layer, else ``KVCache``.
- ``KVCache`` (global layer): ``keys``/``values`` are (B, H, S, D) buffers holding the
  ``offset`` tokens seen so far in slots ``[0, offset)``, in temporal order; ``offset`` is also
  the RoPE position of the next token. A write that does not fit makes a new buffer (cut to
  ``offset`` slots when that is not a multiple of 256, then 256-slot steps of zeros
  appended), so a buffer's slots are a multiple of 256 unless kvcache made it. A write that fits
  is a slice assignment into the buffer.
- ``RotatingKVCache(max_size, keep)`` (sliding layer): ``max_size`` is the window, ``keep`` the
  sink tokens at the front that are never overwritten. ``offset`` is the absolute token count
  (the RoPE position, never cut to the window). ``_idx`` is the slot the next single-token
  write goes to: the buffer is a ring of ``max_size`` slots once full, growing in 256-slot steps
  (never past ``max_size``) before that, and ``_idx`` wraps to ``keep``. A multi-token write
  puts the buffer in temporal order and cuts it to ``keep`` + the last ``max_size - 1`` tokens
  plus the new ones, so between prefill chunks a buffer can be longer than the window.
- Slice assignment writes in place only into a buffer nothing else holds (MLX); otherwise it
  copies the whole buffer first. Two cache objects holding the *same* array object see each
  other's writes; a view (a slice) of an array is a different array, so writing either copies.

kvcache reads ``keys``, ``values``, ``offset``, ``_idx``, ``max_size`` and ``keep``, sets the
same attributes on caches it builds, and replaces ``keys``/``values`` of a cache it stored by
views of the same data. Nothing else in kvcache touches these attributes.

Stored layout: a global layer's run holds its ``offset`` tokens in order; a sliding layer's run
holds its ring as it is, with the ring index (``_idx``): ring order is restored exactly, so no
reordering copy is ever needed. Only a buffer longer than the window (between prefill chunks)
is cut down to its ``keep`` sink tokens and the last ``window - keep`` tokens. The slots of a
run past the stored tokens are never read before they are written: they hold zeros, or
whatever the layer's buffer held there when it is copied whole (``layer_copy_jobs``).
"""

import copy

import mlx.core as mx
from mlx_lm.models.cache import KVCache, RotatingKVCache, make_prompt_cache

from .errors import CacheMismatchError, SpecError
from .plan import Adopt, Copy, Take

MAX_KV_SIZE_KEEP = 4  # the sink tokens of make_prompt_cache(model, max_kv_size)


# --- describing a model's caches ----------------------------------------------------------------
def model_layer_kinds(model, max_kv_size=None):
    """Per layer of ``make_prompt_cache(model, max_kv_size)``: ``None`` for a global layer,
    ``(window, keep)`` for a sliding one."""
    return [_layer_kind(c, i) for i, c in enumerate(make_prompt_cache(model, max_kv_size=max_kv_size))]


def _layer_kind(cache, index):
    if isinstance(cache, RotatingKVCache):
        return cache.max_size, cache.keep
    if isinstance(cache, KVCache):
        return None
    raise SpecError(
        f"layer {index} uses {type(cache).__name__}: kvcache stores KVCache and RotatingKVCache layers only"
    )


def makes_its_own_cache(config):
    """True if mlx-lm's model for ``config`` has a ``make_cache`` (``make_prompt_cache`` then
    ignores ``max_kv_size``)."""
    from mlx_lm.utils import _get_classes

    if "model_type" not in config:
        raise SpecError("model config lacks 'model_type': with max_kv_size, pass the model's config.json")
    try:
        model_class, _ = _get_classes(config)
    except ValueError:
        raise SpecError(
            f"model_type {config['model_type']!r} is not an mlx-lm model: use ModelCacheSpec.from_model"
        ) from None
    return hasattr(model_class, "make_cache")


# --- reading a cache to store it ------------------------------------------------------------------
def token_count(cache, spec):
    """The token count every layer of ``cache`` (a model's cache list) agrees on, or raise."""
    if not isinstance(cache, (list, tuple)) or len(cache) != spec.n_layers:
        got = len(cache) if isinstance(cache, (list, tuple)) else type(cache).__name__
        raise CacheMismatchError(
            f"cache has {got} layers, the spec {spec.n_layers}: pass the model's whole cache list"
        )
    offsets = {c.offset for c in cache}
    if len(offsets) != 1:
        raise CacheMismatchError(f"cache layers disagree on the token count ({sorted(offsets)}): store one model state")
    return offsets.pop()


def plan_layer(cache, spec, layer_id, size, run, lent):
    """How layer ``layer_id`` of a cache is stored in a run of ``size`` = ``(n_blocks,
    capacity)`` (``spec.run_sizes``). ``run`` is the agent's current run of the layer (or None);
    ``lent`` says the layer is a zero-copy restore of this agent. A lent layer still holding
    ``run`` with room enough is adopted as it is; one that mlx-lm grew into a buffer of exactly
    ``capacity`` slots is taken as the new run's buffer; anything else is copied."""
    n_blocks, capacity = size
    ring_index = cache._idx if spec.windows[layer_id] is not None else None
    keys, values = cache.keys, cache.values
    if lent:
        if run is not None and keys is run.keys and values is run.values and run.is_intact and run.n_blocks >= n_blocks:
            return Adopt(run, ring_index)
        check_layer(cache, spec, layer_id)
        if keys.shape[2] == capacity:
            return Take(n_blocks, keys, values, ring_index)
    jobs, ring_index = layer_copy_jobs(cache, spec, layer_id, capacity)
    return Copy(n_blocks, jobs, ring_index)


def held_ranges(cache, spec, layer_id):
    """The token ranges ``[(start, stop)]`` of the layer's buffers it holds, in stored order.

    Returns ``(ranges, ring_index)``; ``ring_index`` is None on global layers. Keys and values
    share the ranges. Raises ``CacheMismatchError`` when the layer does not fit ``spec``.
    """
    check_layer(cache, spec, layer_id)
    n, window = cache.offset, spec.windows[layer_id]
    if window is None:
        return [(0, n)], None
    size = cache.keys.shape[2]
    if size > window:  # between prefill chunks: temporal order, keep sinks + the last tokens
        keep = spec.layers[layer_id].keep
        return [(0, keep), (size - (window - keep), size)], window
    if n < window:
        return [(0, n)], n
    return [(0, size)], cache._idx


def layer_copy_jobs(cache, spec, layer_id, capacity):
    """The ``copying`` jobs (keys, values) that store the layer into a run of ``capacity``
    slots, and its ring index (``held_ranges``). A buffer of exactly ``capacity`` slots whose
    tokens start at slot 0 is copied whole: one copy instead of its tokens plus a zero tail
    (the slots past them are never read before they are written)."""
    ranges, ring_index = held_ranges(cache, spec, layer_id)
    if len(ranges) == 1 and ranges[0][0] == 0 and cache.keys.shape[2] == capacity:
        ranges = [(0, capacity)]
    return [([(buffer, a, z) for a, z in ranges], capacity) for buffer in (cache.keys, cache.values)], ring_index


def check_layer(cache, spec, layer_id):
    """Raise ``CacheMismatchError`` unless the layer fits ``spec`` (kind, window, shapes, dtype)."""
    window = spec.windows[layer_id]
    expected = KVCache if window is None else RotatingKVCache
    if not isinstance(cache, expected):
        raise CacheMismatchError(
            f"cache layer {layer_id} is {type(cache).__name__}, the spec expects {expected.__name__}: "
            "store caches of the model the pool's spec was made from (with the same max_kv_size)"
        )
    keys, values = cache.keys, cache.values
    if keys is None or cache.offset < 1:
        raise CacheMismatchError(f"cache layer {layer_id} is empty: run the prompt through the model before storing")
    if window is not None and (cache.max_size, cache.keep) != (window, spec.layers[layer_id].keep):
        raise CacheMismatchError(
            f"cache layer {layer_id} has window {cache.max_size} (keep {cache.keep}), the spec says "
            f"{window} (keep {spec.layers[layer_id].keep}): store caches of the model the spec was made from "
            "(ModelCacheSpec.from_model(model, max_kv_size=...) for make_prompt_cache(model, max_kv_size=...))"
        )
    expected = spec.kv_shape(keys.shape[2])
    got = (keys.shape, values.shape)
    if got != expected:
        raise CacheMismatchError(
            f"cache layer {layer_id} keys/values have shapes {got[0]}/{got[1]}, the spec expects "
            f"{expected[0]}/{expected[1]}: store caches of the model the spec was made from, batch size 1"
        )
    if not (keys.dtype == spec.dtype and values.dtype == spec.dtype):  # == is cheaper than != on mx.Dtype
        raise CacheMismatchError(
            f"cache layer {layer_id} holds {keys.dtype}, the spec says {spec.dtype}: "
            "make the spec with the model's dtype (ModelCacheSpec.from_model)"
        )


# --- handing a stored cache back ------------------------------------------------------------------
def views(cache, layer_ids):
    """``(layer_id, keys view, values view)`` of the given layers: the same data, other arrays."""
    return [(i, cache[i].keys[:, :, :], cache[i].values[:, :, :]) for i in layer_ids]


def hand_back(cache, layer_views):
    """Give the layers of ``cache`` the ``views`` of their data in place of their arrays."""
    for layer_id, keys, values in layer_views:
        cache[layer_id].keys, cache[layer_id].values = keys, values


# --- building a cache to restore --------------------------------------------------------------------
def make_cache_layer(layer, keys, values, total_tokens, ring_index):
    """An mlx-lm cache object for one layer over ``keys``/``values`` (taken as they are)."""
    if layer.is_sliding:
        cache = RotatingKVCache(max_size=layer.window, keep=layer.keep)
        cache._idx = ring_index
    else:
        cache = KVCache()
    cache.keys, cache.values, cache.offset = keys, values, total_tokens
    return cache


def default_ring_index(layer, total_tokens):
    """Ring slot of the next token for a sliding layer stored in temporal order."""
    return min(total_tokens, layer.window)


def arrays(cache):
    """Keys and values of every layer of ``cache``, in order."""
    return [a for c in cache for a in (c.keys, c.values)]


def private_copy(cache):
    """A cache list laid out exactly like ``cache`` (buffers, offsets, ring indices) whose
    arrays are copies only it holds, as after the model's own prefill."""
    copied = []
    for layer_cache in cache:
        layer_copy = copy.copy(layer_cache)
        layer_copy.keys, layer_copy.values = mx.array(layer_cache.keys), mx.array(layer_cache.values)
        copied.append(layer_copy)
    return copied


# --- watching a lent cache ----------------------------------------------------------------------
def watch(cache, layer_ids):
    """layer_id -> what a loan keeps of that lent layer of ``cache``: its attribute dict, which
    outlives the object (so a layer that moved on and was then dropped is still seen to have
    moved)."""
    return {i: vars(cache[i]) for i in layer_ids}


def state_ids(cache):
    """The identity of every layer's attribute dict (what ``watch`` keeps), in order."""
    return [id(vars(c)) for c in cache]


def first_move(watched, total_tokens):
    """The token count the first of ``watched`` ``(state, run, ring_index)`` moved to, or None
    while each still holds its run's arrays at ``total_tokens`` (and ``ring_index``)."""
    for state, run, ring_index in watched:
        if (
            state["keys"] is not run.keys
            or state["values"] is not run.values
            or state["offset"] != total_tokens
            or (ring_index is not None and state.get("_idx") != ring_index)
        ):
            return state["offset"]
    return None
