"""Conversion between one layer of an mlx-lm cache and what a block run stores.

A global layer (``KVCache``) stores its ``offset`` tokens in temporal order. A sliding layer
(``RotatingKVCache``) stores its ring as it is, with the ring slot of the next token
(``_idx``): ring order is restored exactly, so no reordering copy is ever needed. Only a
cache caught between prefill chunks (buffer longer than the window, temporal order) is cut
down to its ``keep`` sink tokens and the last ``window - keep`` tokens. The slots of a run
past the stored tokens are never read before they are written: they hold zeros, or whatever
the layer's buffer held there when it is copied whole (``layer_copy_jobs``).

``offset`` stays the absolute token count on every layer: it is the RoPE position.
"""

from mlx_lm.models.cache import KVCache, RotatingKVCache

from .errors import CacheMismatchError


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


def check_layer(cache, spec, layer_id):
    """Raise ``CacheMismatchError`` unless the layer fits ``spec`` (kind, window, shapes, dtype)."""
    window = spec.windows[layer_id]
    expected = KVCache if window is None else RotatingKVCache
    if not isinstance(cache, expected):
        raise CacheMismatchError(
            f"cache layer {layer_id} is {type(cache).__name__}, the spec expects {expected.__name__}: "
            "store caches of the model the pool's spec was made from"
        )
    keys, values = cache.keys, cache.values
    if keys is None or cache.offset < 1:
        raise CacheMismatchError(f"cache layer {layer_id} is empty: run the prompt through the model before storing")
    if window is not None and (cache.max_size, cache.keep) != (window, spec.layers[layer_id].keep):
        raise CacheMismatchError(
            f"cache layer {layer_id} has window {cache.max_size} (keep {cache.keep}), the spec says "
            f"{window} (keep {spec.layers[layer_id].keep}): store caches of the model the spec was made from"
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
