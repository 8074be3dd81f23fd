"""The one way kvcache copies KV data: into new buffers nobody else holds, many at once.

A *job* describes one new (1, H, tokens, D) array: ``(pieces, tokens)``, where pieces are
``(buffer, start, stop)`` token ranges of (1, H, S, D) buffers, taken in order along the token
axis, then zeros up to ``tokens`` (or cut at ``tokens``). ``copy_jobs`` makes all the arrays of
a store or a restore in one call: each job is one MLX op (a copy per piece), and evaluation
starts every ``PIPELINE`` arrays, so the device copies while the rest are built and booked.

MLX shares memory between arrays whenever it can (slices are views; a concatenate of one
array is that array). A buffer that shares memory cannot be written in place, so the first
decode step on it would copy the whole layer. Every array made here is a fresh buffer.
"""

import mlx.core as mx

PIPELINE = 16  # arrays per mx.async_eval: the device starts copying while the rest are built


def copy_jobs(jobs):
    """One new array per job, in order (see the module docstring); evaluation has started."""
    made, zeros = [], {}
    for pieces, tokens in jobs:
        made.append(_concatenate(pieces, tokens, zeros))
        if len(made) % PIPELINE == 0:
            mx.async_eval(made[-PIPELINE:])
    if len(made) % PIPELINE:
        mx.async_eval(made[len(made) - len(made) % PIPELINE :])
    return made


def _concatenate(pieces, tokens, zeros):
    """One job as one MLX op: a fresh buffer, whatever the number of pieces. A zero tail is
    taken from ``zeros`` ((shape, dtype) -> array), shared by the jobs of one call."""
    views, held = [], 0
    for buffer, start, stop in pieces:
        stop = min(stop, start + tokens - held)
        if stop <= start:
            continue
        views.append(buffer if (start, stop) == (0, buffer.shape[2]) else buffer[:, :, start:stop])
        held += stop - start
    if held < tokens:  # concatenated, not padded: mx.pad fills the whole output, then copies over it
        B, H, _, D = views[0].shape
        key = ((B, H, tokens - held, D), views[0].dtype)
        if key not in zeros:
            zeros[key] = mx.zeros(*key)
        views.append(zeros[key])
    if len(views) == 1:
        return mx.array(views[0])  # mx.concatenate of one array would alias it
    return mx.concatenate(views, axis=2)
