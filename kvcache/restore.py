"""Restore strategies: how an agent's blocks become the keys and values of mlx-lm caches.

Each strategy is ``fn(spec, agent_blocks) -> [(keys, values, zero_copy)]``, one entry per
layer; ``zero_copy`` says the arrays *are* a block run's buffers (shared with the pool, see
``engine``). All the copies of one restore are made by one ``copying.copy_jobs`` call (one
kernel launch on CUDA).

- ``zero_copy`` (default): a layer whose blocks are one whole ``BlockRun`` in order gets the
  run's buffers themselves: nothing is copied, and since the buffer has room for the next
  token and only the cache holds it as a Python object, decoding writes in place. Any other
  layer is gathered.
- ``gather``: the blocks are merged into maximal contiguous slices, copied into one new
  buffer per layer.
- ``concat``: the seed's design (EXP-006): every block is its own piece of the copy. Off CUDA
  that is one ``mx.concatenate`` input per block, the measured baseline.

A gathered sliding layer is cut to its ring size (a hand-built table may hold more).
"""

from .copying import copy_block_layers
from .errors import UnknownStrategyError


def zero_copy(spec, agent_blocks):
    layers = [agent_blocks.whole_run(i) for i in range(spec.n_layers)]
    gathered = iter(gather(spec, agent_blocks, [i for i, run in enumerate(layers) if run is None]))
    return [(run.keys, run.values, True) if run is not None else next(gathered) for run in layers]


def gather(spec, agent_blocks, layer_ids=None):
    return _copied(spec, agent_blocks, layer_ids, merge=True)


def concat(spec, agent_blocks):
    return _copied(spec, agent_blocks, None, merge=False)


STRATEGIES = {"zero_copy": zero_copy, "gather": gather, "concat": concat}
DEFAULT_STRATEGY = "zero_copy"


def get_strategy(name):
    """The strategy called ``name`` (None means the default)."""
    name = DEFAULT_STRATEGY if name is None else name
    if name not in STRATEGIES:
        raise UnknownStrategyError(f"unknown restore strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def _copied(spec, agent_blocks, layer_ids, merge):
    """New copies of the given layers (all by default); see ``copying.copy_block_layers``."""
    layer_ids = range(spec.n_layers) if layer_ids is None else layer_ids
    layers = []
    for layer_id in layer_ids:
        blocks = agent_blocks.blocks_for_layer(layer_id)
        layers.append((blocks, spec.capacity_tokens(layer_id, len(blocks))))
    made = copy_block_layers(layers, spec.block_tokens, merge)
    return [(keys, values, False) for keys, values in zip(made[::2], made[1::2])]
