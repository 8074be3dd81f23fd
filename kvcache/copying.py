"""The one way kvcache copies KV data: into new buffers nobody else holds, many at once.

A *job* describes one new (1, H, tokens, D) array: ``(pieces, tokens)``, where pieces are
``(buffer, start, stop)`` token ranges of (1, H, S, D) buffers, taken in order along the token
axis, then zeros up to ``tokens`` (or cut at ``tokens``). ``copy_jobs`` makes all the arrays of
a store or a restore in one call: each job is one MLX op (a copy per piece), and evaluation
starts every ``PIPELINE`` arrays, so the device copies while the rest are built and booked.

MLX shares memory between arrays whenever it can (slices are views; a concatenate of one
array is that array). A buffer that shares memory cannot be written in place, so the first
decode step on it would copy the whole layer. Every array made here is a fresh buffer.

A concatenate moves one element per thread through MLX's strided copy, which runs well below
a plain copy's bandwidth for 2-byte elements; so big pieces are concatenated as the widest
unsigned words a row divides into (``mx.view``: no copy) and the result viewed back. Each
view is one more op for the host to issue, so small pieces (a block) are copied as they are.
"""

import mlx.core as mx

PIPELINE = 16  # arrays per mx.async_eval: the device starts copying while the rest are built
WORDS_FROM_BYTES = 32 * 2**20  # pieces this big on average are copied as words (docs/perf.md: H100)


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
    parts, held = [], 0
    for buffer, start, stop in pieces:
        if held + stop - start > tokens:
            stop = start + tokens - held
        if stop > start:
            parts.append((buffer, start, stop))
            held += stop - start
    if len(parts) == 1 and held == tokens:  # a copy (a concatenate of one array would alias it)
        buffer, start, stop = parts[0]
        return mx.array(buffer if start == 0 and stop == buffer.shape[2] else buffer[:, :, start:stop])
    dtype = parts[0][0].dtype
    word = _word(parts[0][0], held // len(parts))
    views = []
    for buffer, start, stop in parts:
        wide = mx.view(buffer, word) if word is not None else buffer  # a view of a whole buffer shares it
        views.append(wide if start == 0 and stop == buffer.shape[2] else wide[:, :, start:stop])
    if held < tokens:
        B, H, _, D = views[0].shape
        key = ((B, H, tokens - held, D), views[0].dtype)
        if key not in zeros:
            zeros[key] = mx.zeros(*key)
        views.append(zeros[key])
    joined = mx.concatenate(views, axis=2)
    return mx.view(joined, dtype) if word is not None else joined


def _word(buffer, piece_tokens):
    """The widest unsigned integer dtype, wider than the buffer's, that a row (last axis) divides
    into; None for pieces under ``WORDS_FROM_BYTES`` or rows no wider word divides."""
    if piece_tokens * buffer.nbytes // buffer.shape[2] < WORDS_FROM_BYTES:
        return None
    row = buffer.shape[3] * buffer.dtype.size
    return next((w for w in (mx.uint64, mx.uint32) if w.size > buffer.dtype.size and row % w.size == 0), None)
