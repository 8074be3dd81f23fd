"""Restore strategies: how an agent's blocks become the keys and values of mlx-lm caches.

Each strategy is ``fn(spec, agent_blocks) -> [(keys, values, zero_copy)]``, one entry per
layer; ``zero_copy`` says the arrays *are* a block run's buffers (shared with the pool, see
``engine``). All the copies of one restore are made by one ``copying.copy_jobs`` call.

- ``zero_copy`` (default): a layer held by one ``BlockRun`` (what a store makes) gets the
  run's buffers themselves: nothing is copied, and since the buffer has room for the next
  token and only the cache holds it as a Python object, decoding writes in place. A layer of
  several runs (a fragmented table) is gathered.
- ``gather``: a private copy: the layer's runs, each whole, copied into one new buffer per
  layer by one op.
- ``concat``: the seed's name (EXP-006) for the copying restore; it is ``gather``. The seed
  concatenated one piece per block, one copy launch per block, far below plain-copy
  bandwidth on a GPU; merged blocks copy near it (docs/numbers.md).

A gathered sliding layer is cut to its ring size (a hand-built table may hold more).
"""

from .copying import copy_jobs
from .errors import UnknownStrategyError


def zero_copy(spec, agent_blocks):
    layers = [agent_blocks.whole_run(i) for i in range(spec.n_layers)]
    gathered = iter(gather(spec, agent_blocks, [i for i, run in enumerate(layers) if run is None]))
    return [(run.keys, run.values, True) if run is not None else next(gathered) for run in layers]


def gather(spec, agent_blocks, layer_ids=None):
    """New copies of the given layers (all by default): one copy per contiguous slice."""
    made = copy_jobs(gather_jobs(spec, agent_blocks, layer_ids))
    return [(keys, values, False) for keys, values in zip(made[::2], made[1::2])]


def gather_jobs(spec, agent_blocks, layer_ids=None):
    """The ``copying`` jobs of ``gather``: keys then values of each layer."""
    layer_ids = range(spec.n_layers) if layer_ids is None else layer_ids
    jobs = []
    for layer_id in layer_ids:
        run = agent_blocks.whole_run(layer_id)
        if run is not None:  # a stored layer: its run, whole
            jobs += [([(run.keys, 0, run.capacity)], run.capacity), ([(run.values, 0, run.capacity)], run.capacity)]
            continue
        runs = agent_blocks.runs_for_layer(layer_id)
        n_blocks = sum(r.n_blocks for r in runs)
        tokens = min(spec.capacity_tokens(layer_id, n_blocks), sum(r.capacity for r in runs))
        jobs.append(([(r.keys, 0, r.capacity) for r in runs], tokens))
        jobs.append(([(r.values, 0, r.capacity) for r in runs], tokens))
    return jobs


STRATEGIES = {"zero_copy": zero_copy, "gather": gather, "concat": gather}
DEFAULT_STRATEGY = "zero_copy"


def get_strategy(name):
    """The strategy called ``name`` (None means the default)."""
    name = DEFAULT_STRATEGY if name is None else name
    if name not in STRATEGIES:
        raise UnknownStrategyError(f"unknown restore strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]

