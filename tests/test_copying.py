"""copy_jobs: the arrays it makes, and the task table the CUDA kernel runs.

The task table is checked on any machine by executing it with numpy (the kernel's semantics,
one task at a time) and comparing with the reference concatenation. On a CUDA GPU the kernel
itself is compared with the reference (the test skips elsewhere: scripts/device runs it).
"""

import mlx.core as mx
import numpy as np
import pytest

from conftest import small_spec
from kvcache import BlockPool, BlockPoolBatchEngine, copying, cuda_copy, random_cache, scattered_copy

H, D = 2, 64  # 64 bf16 per row: 8 words


def buffer(tokens, seed, d=D):
    return mx.random.normal((1, H, tokens, d), key=mx.random.key(seed)).astype(mx.bfloat16)


def reference(pieces, tokens):
    """The job by hand: pieces in order along axis 2, cut or zero-padded to ``tokens``."""
    parts = [np.array(b.astype(mx.float32))[:, :, a:z, :] for b, a, z in pieces]
    joined = np.concatenate(parts, axis=2)[:, :, :tokens, :]
    pad = tokens - joined.shape[2]
    return np.pad(joined, ((0, 0), (0, 0), (0, pad), (0, 0)))


def execute_table(inputs, table, jobs):
    """Run the task table as the kernel does, on numpy words (uint8 rows of 16 bytes)."""
    as_words = [np.array(b.view(mx.uint8)).reshape(-1, cuda_copy.WORD) for b in inputs]
    outputs = [np.full((H * tokens * p[0][0].shape[3] * 2 // cuda_copy.WORD, cuda_copy.WORD), 255, np.uint8)
               for p, tokens in jobs]
    for number, src_off, src_stride, out, dst_off, dst_stride, words in table:
        assert 0 < words <= cuda_copy.CHUNK
        for head in range(H):
            dst = outputs[out][dst_off + head * dst_stride:][:words]
            dst[:] = 0 if number < 0 else as_words[number][src_off + head * src_stride:][:words]
    return [np.frombuffer(o.tobytes(), np.uint16).reshape(1, H, tokens, -1) for o, (_, tokens) in zip(outputs, jobs)]


def bf16_bits(array):
    return np.array(array.view(mx.uint16))


def jobs_with_every_shape():
    a, b, c = buffer(700, 1), buffer(300, 2), buffer(64, 3, d=128)
    return [
        ([(a, 0, 700)], 700),  # a whole buffer, several chunks (256 tokens of 8 words make a chunk)
        ([(a, 0, 500)], 768),  # a head with a zero tail (a store's spare slots)
        ([(b, 0, 16), (b, 200, 300)], 116),  # two ranges of one buffer (sinks + tail)
        ([(a, 256, 512), (b, 0, 256), (a, 0, 256)], 700),  # blocks of two buffers, cut at 700
        ([(b, 0, 0), (b, 10, 20)], 10),  # an empty range is skipped
        ([(c, 0, 64)], 64),  # another head size in the same call
    ]


def test_copy_jobs_matches_the_reference_for_every_job_shape():
    jobs = jobs_with_every_shape()
    made = copying.copy_jobs(jobs)
    mx.eval(made)
    for array, (pieces, tokens) in zip(made, jobs):
        assert array.shape == (1, H, tokens, pieces[0][0].shape[3]) and array.dtype == mx.bfloat16
        np.testing.assert_array_equal(np.array(array.astype(mx.float32)), reference(pieces, tokens))


def test_copy_jobs_shares_no_memory_with_a_whole_buffer_copied_alone():
    a = buffer(32, 4)
    (copy,) = copying.copy_jobs([([(a, 0, 32)], 32)])
    mx.eval(copy)
    copy[..., 0, :] = 7.0  # an in-place write to the copy
    assert not mx.array_equal(copy, a).item()


def test_the_task_table_executed_by_hand_gives_every_job():
    jobs = jobs_with_every_shape()
    inputs, table = cuda_copy.plan(jobs)
    assert len(inputs) == 3  # each buffer is one kernel input, however many pieces it gives
    assert table.dtype == np.int32 and table.shape[1] == cuda_copy.FIELDS
    for got, (pieces, tokens) in zip(execute_table(inputs, table, jobs), jobs):
        expected = bf16_bits(mx.array(reference(pieces, tokens)).astype(mx.bfloat16))
        np.testing.assert_array_equal(got, expected)


def test_launch_groups_keep_every_launch_under_the_pointer_limit_and_jobs_in_order():
    blocks = [buffer(8, i) for i in range(cuda_copy.MAX_POINTERS)]
    jobs = [([(b, 0, 8) for b in blocks[i : i + 40]], 320) for i in range(0, len(blocks), 40)]
    groups = list(cuda_copy._launch_groups(jobs))
    assert len(groups) > 1
    assert [job for group in groups for job in group] == jobs
    for group in groups:
        inputs, _ = cuda_copy.plan(group)
        assert len(inputs) + len(group) + 1 <= cuda_copy.MAX_POINTERS


def test_the_cuda_kernel_is_used_only_on_a_cuda_gpu():
    jobs = jobs_with_every_shape()
    assert cuda_copy.usable(jobs) == (mx.default_device() == mx.gpu and mx.cuda.is_available())
    assert not cuda_copy.usable([([(buffer(8, 5).astype(mx.float32), 0, 8)], 8), ([(buffer(8, 6), 0, 8)], 8)])


@pytest.mark.skipif(not mx.cuda.is_available(), reason="the kernel runs on MLX's CUDA backend only")
def test_the_cuda_kernel_matches_the_reference():
    jobs = jobs_with_every_shape()
    made = cuda_copy.copy_jobs(jobs)
    mx.eval(made)
    for array, (pieces, tokens) in zip(made, jobs):
        np.testing.assert_array_equal(np.array(array.astype(mx.float32)), reference(pieces, tokens))


def test_the_block_task_table_executed_by_hand_gives_every_layer():
    spec = small_spec(block_tokens=4, window=6, dtype=mx.bfloat16, head_dim=64)  # the sliding run holds 6
    pool = BlockPool(spec, 200)
    engine = BlockPoolBatchEngine(pool)
    table = engine.store("a", random_cache(spec, 13))
    scattered = scattered_copy(pool, table, "b")
    mixed = [scattered.blocks_for_layer(0)[:2] + table.blocks_for_layer(0)[2:], table.blocks_for_layer(1),
             scattered.blocks_for_layer(2)]
    layers = [(blocks, spec.capacity_tokens(i, len(blocks))) for i, blocks in enumerate(mixed)]
    inputs, tasks, tokens = cuda_copy.plan_blocks(layers, spec.block_tokens)
    jobs = [([(inputs[0], 0, 0)], n) for n in tokens for _ in "kv"]  # the outputs' lengths
    got = execute_table(inputs, tasks, jobs)
    for i, (blocks, _) in enumerate(layers):
        assert tokens[i] == spec.capacity_tokens(i, len(blocks))
        for kv, array in enumerate(got[2 * i : 2 * i + 2]):
            pieces = [((b.run.keys, b.run.values)[kv], *b.token_range(spec.block_tokens)) for b in blocks]
            expected = bf16_bits(mx.array(reference(pieces, tokens[i])).astype(mx.bfloat16))
            np.testing.assert_array_equal(array, expected)
