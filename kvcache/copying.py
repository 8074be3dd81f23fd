"""The one way kvcache copies KV data: into new buffers nobody else holds, many at once.

A *job* describes one new (1, H, tokens, D) array: ``(pieces, tokens)``, where pieces are
``(buffer, start, stop)`` token ranges of (1, H, S, D) buffers, taken in order along the token
axis, then zeros up to ``tokens`` (or cut at ``tokens``). ``copy_jobs`` makes all the arrays of
a store or a restore in one call, so a backend can fuse them:

- on MLX's CUDA backend, ``cuda_copy`` runs every job in one kernel launch (a few for very
  many buffers): launches, not bytes, set the time of many small copies there;
- elsewhere (CPU, Metal) each job is one ``mx.concatenate`` (one op, a copy per piece).

MLX shares memory between arrays whenever it can (slices are views; a concatenate of one
array is that array). A buffer that shares memory cannot be written in place, so the first
decode step on it would copy the whole layer. Every array made here is a fresh buffer.
"""

import mlx.core as mx

from . import cuda_copy


def copy_jobs(jobs):
    """One new array per job, in order (see the module docstring). The caller evaluates them."""
    jobs = list(jobs)
    if cuda_copy.usable(jobs):
        return cuda_copy.copy_jobs(jobs)
    return [_concatenate(pieces, tokens) for pieces, tokens in jobs]


def copy_block_layers(layers, block_tokens, merge=True):
    """``[keys, values]`` new arrays for each layer ``(blocks, max_tokens)``: its blocks' tokens
    in order, cut at ``max_tokens``. ``merge`` joins consecutive blocks of a run into one piece (off
    CUDA, where each piece is a copy); ``merge=False`` is the seed's one piece per block."""
    layers = list(layers)
    if layers and cuda_copy.usable([([(layers[0][0][0].run.keys, 0, 0)], 0)]):
        return cuda_copy.copy_block_layers(layers, block_tokens)
    jobs = []
    for blocks, max_tokens in layers:
        slices = _merged(blocks, block_tokens) if merge else [(b.run, *b.token_range(block_tokens)) for b in blocks]
        tokens = min(max_tokens, sum(z - a for _, a, z in slices))
        jobs.append(([(run.keys, a, z) for run, a, z in slices], tokens))
        jobs.append(([(run.values, a, z) for run, a, z in slices], tokens))
    return copy_jobs(jobs)


def _merged(blocks, block_tokens):
    """Consecutive blocks of one run merged into ``(run, start, stop)`` token slices."""
    slices = []
    for block in blocks:
        start, stop = block.token_range(block_tokens)
        if slices and slices[-1][0] is block.run and slices[-1][2] == start:
            slices[-1] = (block.run, slices[-1][1], stop)
        else:
            slices.append((block.run, start, stop))
    return slices


def _concatenate(pieces, tokens):
    views, held = [], 0
    for buffer, start, stop in pieces:
        stop = min(stop, start + tokens - held)
        if stop <= start:
            continue
        views.append(buffer if (start, stop) == (0, buffer.shape[2]) else buffer[..., start:stop, :])
        held += stop - start
    if held < tokens:
        B, H, _, D = views[0].shape
        views.append(mx.zeros((B, H, tokens - held, D), views[0].dtype))
    if len(views) == 1:
        return mx.array(views[0])  # mx.concatenate of one array would alias it
    return mx.concatenate(views, axis=2)
