"""Restore strategies: how a layer's blocks become the keys and values of an mlx-lm cache.

Each strategy is ``fn(spec, agent_blocks, layer_id) -> (keys, values, zero_copy)``;
``zero_copy`` says the arrays *are* a block run's buffers (shared with the pool, see ``engine``).

- ``zero_copy`` (default): a layer whose blocks are one whole ``BlockRun`` in order gets the
  run's buffers themselves: nothing is copied, and since the buffer has room for the next
  token and only the cache holds it as a Python object, decoding writes in place. Any other
  block list falls back to ``gather``.
- ``gather``: one copy per layer: the blocks are merged into maximal contiguous slices and
  copied by a single concatenate.
- ``concat``: the seed's design (EXP-006), one concatenate input per block; the measured
  baseline.
"""

from .copying import fused_copy
from .errors import UnknownStrategyError


def zero_copy(spec, agent_blocks, layer_id):
    run = agent_blocks.whole_run(layer_id)
    if run is None:
        return gather(spec, agent_blocks, layer_id)
    return run.keys, run.values, True


def gather(spec, agent_blocks, layer_id):
    blocks = agent_blocks.blocks_for_layer(layer_id)
    slices = _contiguous_slices(blocks, spec.block_tokens)
    keys = _copy_slices([run.keys for run, _, _ in slices], slices)
    values = _copy_slices([run.values for run, _, _ in slices], slices)
    return _fit(spec, layer_id, len(blocks), keys, values) + (False,)


def concat(spec, agent_blocks, layer_id):
    blocks = agent_blocks.blocks_for_layer(layer_id)
    ranges = [b.token_range(spec.block_tokens) for b in blocks]
    keys = fused_copy([b.run.keys[..., a:z, :] for b, (a, z) in zip(blocks, ranges)])
    values = fused_copy([b.run.values[..., a:z, :] for b, (a, z) in zip(blocks, ranges)])
    return _fit(spec, layer_id, len(blocks), keys, values) + (False,)


STRATEGIES = {"zero_copy": zero_copy, "gather": gather, "concat": concat}
DEFAULT_STRATEGY = "zero_copy"


def get_strategy(name):
    """The strategy called ``name`` (None means the default)."""
    name = DEFAULT_STRATEGY if name is None else name
    if name not in STRATEGIES:
        raise UnknownStrategyError(f"unknown restore strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def _contiguous_slices(blocks, block_tokens):
    """Merge consecutive blocks of one run into ``(run, start, stop)`` token slices."""
    slices = []
    for block in blocks:
        start, stop = block.token_range(block_tokens)
        if slices and slices[-1][0] is block.run and slices[-1][2] == start:
            slices[-1] = (block.run, slices[-1][1], stop)
        else:
            slices.append((block.run, start, stop))
    return slices


def _copy_slices(buffers, slices):
    """One fused copy of the slices; a slice that is a whole run is taken without a view op."""
    pieces = [buf if (a, z) == (0, run.capacity) else buf[..., a:z, :] for buf, (run, a, z) in zip(buffers, slices)]
    return fused_copy(pieces)


def _fit(spec, layer_id, n_blocks, keys, values):
    """Cut a gathered sliding layer to its ring size (a hand-built table may hold more)."""
    capacity = spec.capacity_tokens(layer_id, n_blocks)
    if keys.shape[2] > capacity:
        keys, values = keys[..., :capacity, :], values[..., :capacity, :]
    return keys, values
