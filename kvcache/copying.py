"""The one way kvcache copies KV data: a single fused copy into a buffer nobody else holds.

MLX shares memory between arrays whenever it can (slices are views; a concatenate of one
array is that array). A buffer that shares memory cannot be written in place, so the first
decode step on it would copy the whole layer. ``fused_copy`` always returns a fresh buffer.
"""

import mlx.core as mx


def fused_copy(pieces, spare=0):
    """A new array: ``pieces`` (B, H, S_i, D views) in order along axis 2, then ``spare`` zero slots.

    One copy operation whatever the number of pieces; the result shares no memory with them.
    """
    if spare > 0:
        B, H, _, D = pieces[0].shape
        pieces = list(pieces) + [mx.zeros((B, H, spare, D), pieces[0].dtype)]
    if len(pieces) == 1:
        return mx.array(pieces[0])  # mx.concatenate of one array would alias it
    return mx.concatenate(pieces, axis=2)
