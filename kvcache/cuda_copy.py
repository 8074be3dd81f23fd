"""Many copies in a few kernel launches on MLX's CUDA backend (``copying.copy_jobs`` uses it).

A job makes one new (1, H, tokens, D) array from pieces ``(buffer, start, stop)``: token
ranges of (1, H, S, D) buffers, in order, then zeros up to ``tokens`` (or cut at ``tokens``).
One MLX op per piece would be one launch per piece; a restore of 8K tokens from 1 MiB blocks
is 848 of them, and launches, not bytes, would set the time. Here ``plan`` turns all the
jobs into one table of tasks, each copying (or zeroing) at most ``CHUNK`` 16-byte words of
one head, and one kernel runs every task:

    task = (input, src_offset, src_head_stride, output, dst_offset, dst_head_stride, words)

with offsets and strides in words, ``input == -1`` for zeros. Thread block (x, task, head)
copies its share of the task's words for that head. The kernel is generated per number of
inputs and outputs (a switch picks the pointer) and compiled once per process; a launch holds
at most ``MAX_POINTERS`` buffers, more jobs take more launches.
"""

from operator import attrgetter

import mlx.core as mx
import numpy as np

WORD = 16  # bytes moved per thread per step (a uint4)
CHUNK = 8192  # words per task and head: 128 KiB
THREADS = 256
BLOCKS_PER_TASK = 4  # thread blocks per task and head: 8 words per thread
MAX_POINTERS = 480  # inputs + outputs per launch: 3.8 KB of kernel parameters, under CUDA's 4 KB
FIELDS = 7

_kernels = {}
_run, _index = attrgetter("run"), attrgetter("index")


def usable(jobs):
    """True when the jobs can run here: the default device is a CUDA GPU, and every buffer is
    batch 1 with one dtype, the same head count, and rows of whole words."""
    if not jobs or mx.default_device() != mx.gpu or not mx.cuda.is_available():
        return False
    first = jobs[0][0][0][0]
    for pieces, _ in jobs:
        for buffer, _, _ in pieces:
            B, H, _, D = buffer.shape
            if B != 1 or H != first.shape[1] or buffer.dtype != first.dtype or (D * buffer.dtype.size) % WORD:
                return False
    return True


def copy_jobs(jobs):
    """The jobs' new arrays, in order (see the module docstring). Each launch is started
    (``mx.async_eval``) as soon as it is built, so the device works while the next is planned."""
    outputs = []
    for group in _launch_groups(jobs):
        inputs, table = plan(group)
        made = _launch(inputs, table, [_shape(pieces[0][0], tokens) for pieces, tokens in group])
        mx.async_eval(made)
        outputs.extend(made)
    return outputs


def plan(jobs):
    """``(inputs, table)``: the distinct buffers the jobs read, and the task table (int32, n x 7)."""
    numbers, inputs, rows = {}, [], []
    for output, (pieces, tokens) in enumerate(jobs):
        row_words = pieces[0][0].shape[3] * pieces[0][0].dtype.size // WORD
        dst_stride = tokens * row_words
        filled = 0
        for buffer, start, stop in pieces:
            n = min(stop - start, tokens - filled)
            if n <= 0:
                continue
            number = numbers.get(id(buffer))
            if number is None:
                number = numbers[id(buffer)] = len(inputs)
                inputs.append(buffer)
            rows.append((number, start * row_words, buffer.shape[2] * row_words, output,
                         filled * row_words, dst_stride, n * row_words))
            filled += n
        if filled < tokens:
            rows.append((-1, 0, 0, output, filled * row_words, dst_stride, (tokens - filled) * row_words))
    return inputs, _chunked(np.array(rows, dtype=np.int64).reshape(-1, FIELDS))


def copy_block_layers(layers, block_tokens):
    """``[keys, values]`` arrays for each layer ``(blocks, max_tokens)``: the layer's blocks in
    order, cut at ``max_tokens``. Like ``copy_jobs`` with one piece per block, planned with numpy: a
    restore from thousands of blocks must not spend a Python loop per block on its plan.
    Layers are grouped into launches by the buffers they read (a run belongs to one layer)."""
    outputs, group, pointers = [], [], 1
    for blocks, tokens in layers:
        runs = len(set(map(_run, blocks)))
        assert 2 * runs + 3 <= MAX_POINTERS, "one layer reads more buffers than a launch can take"
        if group and pointers + 2 * runs + 2 > MAX_POINTERS:
            outputs.extend(_launch_block_group(group, block_tokens))
            group, pointers = [], 1
        group.append((blocks, tokens))
        pointers += 2 * runs + 2
    if group:
        outputs.extend(_launch_block_group(group, block_tokens))
    return outputs


def _launch_block_group(layers, block_tokens):
    inputs, table, tokens = plan_blocks(layers, block_tokens)
    keys, values = inputs[0], inputs[len(inputs) // 2]
    made = _launch(inputs, table, [_shape(a, n) for n in tokens for a in (keys, values)])
    mx.async_eval(made)
    return made


def plan_blocks(layers, block_tokens):
    """``(inputs, table, tokens)`` for ``copy_block_layers``: inputs are the runs' keys, then
    their values; ``tokens`` is each layer's output length."""
    blocks = [b for layer_blocks, _ in layers for b in layer_blocks]
    block_runs = list(map(_run, blocks))
    numbers = {run: number for number, run in enumerate(dict.fromkeys(block_runs))}
    runs = list(numbers)
    run_of = np.fromiter(map(numbers.__getitem__, block_runs), np.int64, len(blocks))
    index = np.fromiter(map(_index, blocks), np.int64, len(blocks))
    counts = np.array([len(layer_blocks) for layer_blocks, _ in layers])
    layer_of = np.repeat(np.arange(len(layers)), counts)
    capacity = np.array([run.capacity for run in runs], np.int64)[run_of]
    start = index * block_tokens
    length = np.minimum(block_tokens, capacity - start)
    before = np.cumsum(length) - length  # tokens before each block, over all layers
    first = np.cumsum(counts) - counts
    filled = before - np.repeat(before[first], counts)  # tokens before each block in its layer
    held = np.add.reduceat(length, first)
    layer_tokens = np.minimum(held, [max_tokens for _, max_tokens in layers])
    tokens = layer_tokens[layer_of]
    length = np.clip(tokens - filled, 0, length)
    keys, values = [run.keys for run in runs], [run.values for run in runs]
    tables = []
    for kv, buffers in enumerate((keys, values)):
        words = buffers[0].shape[3] * buffers[0].dtype.size // WORD
        table = np.stack([run_of + kv * len(runs), start * words, capacity * words, 2 * layer_of + kv,
                          filled * words, tokens * words, length * words], axis=1)
        tables.append(table[length > 0])
    return keys + values, _chunked(np.concatenate(tables)), [int(n) for n in layer_tokens]


def _chunked(tasks):
    """Split every task into tasks of at most ``CHUNK`` words (offsets advanced, lengths cut)."""
    counts = -(-tasks[:, 6] // CHUNK)
    split = np.repeat(tasks, counts, axis=0)
    part = np.arange(len(split)) - np.repeat(np.cumsum(counts) - counts, counts)
    split[:, 1] += part * CHUNK
    split[:, 4] += part * CHUNK
    split[:, 6] = np.minimum(CHUNK, split[:, 6] - part * CHUNK)
    assert split[:, [1, 2, 4, 5, 6]].max(initial=0) < 2**31, "offsets must fit the kernel's int32"
    return split.astype(np.int32)


def _launch_groups(jobs):
    """Consecutive jobs split so that no launch holds more than ``MAX_POINTERS`` buffers."""
    group, seen = [], set()
    for job in jobs:
        new = {id(buffer) for buffer, _, _ in job[0]} - seen
        if group and len(seen) + len(new) + len(group) + 1 > MAX_POINTERS:
            yield group
            group, seen = [], set()
            new = {id(buffer) for buffer, _, _ in job[0]}
        assert len(new) + 1 <= MAX_POINTERS, "one job reads more buffers than a launch can take"
        group.append(job)
        seen |= new
    if group:
        yield group


def _shape(buffer, tokens):
    B, H, _, D = buffer.shape
    return (B, H, tokens, D)


def _launch(inputs, table, shapes):
    """One kernel launch making arrays of ``shapes`` by the task ``table`` over ``inputs``."""
    dtype = inputs[0].dtype
    kernel = _kernel(len(inputs), len(shapes), dtype)
    return kernel(
        inputs=[*inputs, mx.array(table)],
        grid=(BLOCKS_PER_TASK * THREADS, len(table), shapes[0][1]),
        threadgroup=(THREADS, 1, 1),
        output_shapes=shapes,
        output_dtypes=[dtype] * len(shapes),
    )


def _kernel(n_inputs, n_outputs, dtype):
    key = (n_inputs, n_outputs, dtype)
    if key not in _kernels:
        _kernels[key] = mx.fast.cuda_kernel(
            name=f"kvcache_copy_{str(dtype).split('.')[-1]}_{n_inputs}_{n_outputs}",
            input_names=[f"in{i}" for i in range(n_inputs)] + ["tasks"],
            output_names=[f"out{o}" for o in range(n_outputs)],
            source=_source(n_inputs, n_outputs),
        )
    return _kernels[key]


def _source(n_inputs, n_outputs):
    def cases(prefix, count, target, const):
        cast = f"reinterpret_cast<{'const ' if const else ''}uint4*>"
        return "\n".join(f"    case {i}: {target} = {cast}({prefix}{i}); break;" for i in range(count))

    return f"""
  const int* task = tasks + {FIELDS} * blockIdx.y;
  const long long head = blockIdx.z;
  const int words = task[6];
  uint4* dst = nullptr;
  switch (task[3]) {{
{cases("out", n_outputs, "dst", False)}
  }}
  dst += task[4] + head * task[5];
  const uint4* src = nullptr;
  switch (task[0]) {{
{cases("in", n_inputs, "src", True)}
    default: break;
  }}
  const int step = gridDim.x * blockDim.x;
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (src == nullptr) {{
    for (; i < words; i += step) dst[i] = make_uint4(0, 0, 0, 0);
    return;
  }}
  src += task[1] + head * task[2];
  for (; i < words; i += step) dst[i] = src[i];
"""
