"""The one way kvcache copies KV data: into new buffers nobody else holds, many at once.

A *job* describes one new (1, H, tokens, D) array: ``(pieces, tokens)``, where pieces are
``(buffer, start, stop)`` token ranges of (1, H, S, D) buffers, taken in order along the token
axis, then zeros up to ``tokens`` (or cut at ``tokens``). ``copy_jobs`` makes all the arrays of
a restore in one call (a store feeds a ``Copier`` layer by layer as it plans): each job is one
copying MLX op (a copy per piece), and evaluation starts every ``PIPELINE`` arrays, so the
device copies while the rest are built and booked.

MLX shares memory between arrays whenever it can (slices are views; a concatenate of one
array is that array). A buffer that shares memory cannot be written in place, so the first
decode step on it would copy the whole layer. Every array made here is a fresh buffer.

A concatenate moves one element at a time through MLX's strided copy, which runs well below
a plain copy's bandwidth for 2-byte elements; so pieces are concatenated as the widest
unsigned words a row divides into (``mx.view``: no copy) and the result viewed back. On a
GPU each view is one more op for the host to issue, which small pieces (a block) do not win
back: there only big pieces go as words (``WORDS_FROM_BYTES``, measured in
docs/experiments/2026-11-27-store-and-restore-costs.md).
"""

import mlx.core as mx

PIPELINE = 16  # arrays per mx.async_eval: the device starts copying while the rest are built
WORDS_FROM_BYTES = {"cpu": 0, "gpu": 32 * 2**20}  # per device type: pieces this big on average go as words


def copy_jobs(jobs, words_from_bytes=None):
    """One new array per job, in order (see the module docstring); evaluation has started.

    ``words_from_bytes`` overrides this device's ``WORDS_FROM_BYTES`` (to compare the rules)."""
    copier = Copier(words_from_bytes)
    copier.add(jobs)
    return copier.finish()


class Copier:
    """``copy_jobs`` fed in parts: ``add`` makes each part's arrays (evaluation starts every
    ``PIPELINE`` arrays, so the device copies the first parts while the next are prepared),
    ``finish`` starts the rest and returns every array made, in order."""

    def __init__(self, words_from_bytes=None):
        device = mx.default_device().type.name
        self._words_from = WORDS_FROM_BYTES[device] if words_from_bytes is None else words_from_bytes
        self._zeros = {}  # one zero tail per (shape, dtype), shared by the jobs
        self._made = []
        self._started = 0  # arrays whose evaluation has started

    def add(self, jobs):
        for pieces, tokens in jobs:
            self._made.append(_concatenate(pieces, tokens, self._zeros, self._words_from))
            if len(self._made) - self._started == PIPELINE:
                self._start()

    def finish(self):
        self._start()
        return self._made

    def _start(self):
        if self._started < len(self._made):
            mx.async_eval(self._made[self._started :])
            self._started = len(self._made)


def _concatenate(pieces, tokens, zeros, words_from):
    """One job as one copying op (views aside): a fresh buffer, whatever the number of pieces.
    A zero tail is taken from ``zeros`` ((shape, dtype) -> array), shared by the jobs of one
    call; pieces of ``words_from`` bytes on average are concatenated as words."""
    if len(pieces) == 1:  # most jobs: a whole buffer (a copy; a concatenate of it would alias it)
        buffer, start, stop = pieces[0]
        if start == 0 and stop == tokens == buffer.shape[2]:
            return mx.array(buffer)
    parts, held = [], 0
    for buffer, start, stop in pieces:
        if held + stop - start > tokens:
            stop = start + tokens - held
        if stop > start:
            parts.append((buffer, start, stop))
            held += stop - start
    if len(parts) == 1 and held == tokens:  # a copy (a concatenate of one array would alias it)
        buffer, start, stop = parts[0]
        return mx.array(buffer[:, :, start:stop])
    first = parts[0][0]
    piece_bytes = held // len(parts) * (first.nbytes // first.shape[2])
    word = _word(first) if piece_bytes >= words_from else None
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
    return mx.view(joined, first.dtype) if word is not None else joined


def _word(buffer):
    """The widest unsigned integer dtype, wider than the buffer's, that a row (last axis) divides into."""
    row = buffer.shape[3] * buffer.dtype.size
    return next((w for w in (mx.uint64, mx.uint32) if w.size > buffer.dtype.size and row % w.size == 0), None)
