"""copy_jobs: the arrays it makes from pieces of buffers (that they are fresh buffers, written
in place by the next decode step, is tested end to end in test_engine_restore)."""

import mlx.core as mx
import numpy as np
import pytest

from kvcache import copying

H, D = 2, 64


def buffer(tokens, seed, d=D, dtype=mx.bfloat16):
    return mx.random.normal((1, H, tokens, d), key=mx.random.key(seed)).astype(dtype)


def reference(pieces, tokens):
    """The job by hand: pieces in order along axis 2, cut or zero-padded to ``tokens``."""
    parts = [np.array(b.astype(mx.float32))[:, :, a:z, :] for b, a, z in pieces]
    joined = np.concatenate(parts, axis=2)[:, :, :tokens, :]
    pad = tokens - joined.shape[2]
    return np.pad(joined, ((0, 0), (0, 0), (0, pad), (0, 0)))


def jobs_with_every_shape():
    a, b, c = buffer(700, 1), buffer(300, 2), buffer(64, 3, d=128)
    odd, six, wide = buffer(40, 4, d=3), buffer(40, 5, d=6), buffer(40, 6, dtype=mx.float32)
    return [
        ([(a, 0, 700)], 700),  # a whole buffer
        ([(a, 0, 500)], 768),  # a head with a zero tail (a store's spare slots)
        ([(b, 0, 16), (b, 200, 300)], 116),  # two ranges of one buffer (sinks + tail)
        ([(a, 256, 512), (b, 0, 256), (a, 0, 256)], 700),  # blocks of two buffers, cut at 700
        ([(b, 0, 0), (b, 10, 20)], 10),  # an empty range is skipped
        ([(c, 0, 64)], 64),  # another head size in the same call
        ([(odd, 0, 20), (odd, 30, 40)], 40),  # rows of 6 bytes: concatenated as they are
        ([(six, 0, 40)], 64),  # rows of 12 bytes: as 4-byte words
        ([(wide, 10, 30), (wide, 0, 10)], 48),  # float32
    ]


@pytest.mark.parametrize("words_from_bytes", [0, float("inf")])  # as words / as elements
def test_copy_jobs_matches_the_reference_for_every_job_shape(monkeypatch, words_from_bytes):
    monkeypatch.setattr(copying, "WORDS_FROM_BYTES", {"cpu": words_from_bytes, "gpu": words_from_bytes})
    jobs = jobs_with_every_shape() * 3  # more than one PIPELINE chunk
    made = copying.copy_jobs(jobs)
    mx.eval(made)
    assert len(made) == len(jobs)
    for array, (pieces, tokens) in zip(made, jobs):
        assert array.shape == (1, H, tokens, pieces[0][0].shape[3]) and array.dtype == pieces[0][0].dtype
        np.testing.assert_array_equal(np.array(array.astype(mx.float32)), reference(pieces, tokens))


def test_copy_jobs_takes_jobs_from_a_generator():
    jobs = jobs_with_every_shape()
    made = copying.copy_jobs(job for job in jobs)
    assert [a.shape[2] for a in made] == [tokens for _, tokens in jobs]



def test_a_copier_fed_in_parts_makes_what_copy_jobs_makes_at_once():
    jobs = jobs_with_every_shape() * 3  # parts that straddle PIPELINE chunks
    copier = copying.Copier()
    for start in range(0, len(jobs), 5):
        copier.add(jobs[start : start + 5])
    made, at_once = copier.finish(), copying.copy_jobs(jobs)
    assert len(made) == len(jobs)
    for part, whole in zip(made, at_once):
        np.testing.assert_array_equal(np.array(part.astype(mx.float32)), np.array(whole.astype(mx.float32)))
