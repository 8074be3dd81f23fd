"""The block pool: a fixed budget of blocks, each ``block_tokens`` tokens of one layer's KV.

Invariants (checked by the tests after every operation):
- every block id is either free or allocated to exactly one (agent, layer), never both;
- ``num_free_blocks + num_used_blocks == total_blocks``;
- an operation that raises changes nothing (allocation is all-or-nothing, so is ``free``).

Storage: ``allocate(n, layer, agent)`` gives ``n`` blocks that lie contiguously in one buffer
per keys and values, a ``BlockRun``. Contiguity is what lets a restore hand the buffer itself
to an mlx-lm cache instead of copying it::

    BlockRun.keys  (1, H, n * block_tokens, D)
    |-- block 0 --|-- block 1 --| ... |-- block n-1 --|

Buffers are made lazily: a run whose contents the engine supplies never makes zeros at all.
All methods are safe to call from several threads.
"""

import threading

import mlx.core as mx

from .errors import BlockOwnershipError, PoolExhaustedError, SpecError


class BlockRun:
    """One buffer of keys and one of values holding ``n_blocks`` consecutive blocks of a layer.

    ``capacity`` is its token slots. ``keys``/``values`` are whatever the engine stored; a run
    nothing was stored into reads as zeros, made on first access in the reading thread (MLX
    binds an unevaluated array to the stream of the thread that made it).
    ``n_allocated`` counts its blocks still allocated (kept by the pool under its lock): a run
    is intact while ``n_allocated == n_blocks``, which checks a whole layer at once.
    """

    def __init__(self, shapes, dtype, n_blocks):
        self.shapes = shapes
        self.dtype = dtype
        self.capacity = shapes[0][2]
        self.n_blocks = n_blocks
        self.n_allocated = 0
        self._keys = self._values = None

    @property
    def keys(self):
        if self._keys is None:
            self._keys = mx.zeros(self.shapes[0], self.dtype)
        return self._keys

    @keys.setter
    def keys(self, array):
        self._keys = array

    @property
    def values(self):
        if self._values is None:
            self._values = mx.zeros(self.shapes[1], self.dtype)
        return self._values

    @values.setter
    def values(self, array):
        self._values = array

    @property
    def is_intact(self):
        return self.n_allocated == self.n_blocks


class Block:
    """A block handle: its id, owner, and place in a ``BlockRun``. Its data is a view of the run."""

    __slots__ = ("block_id", "layer_id", "agent_id", "run", "index")

    def __init__(self, block_id, layer_id, agent_id, run, index):
        self.block_id = block_id
        self.layer_id = layer_id
        self.agent_id = agent_id
        self.run = run
        self.index = index

    def token_range(self, block_tokens):
        """This block's slot range ``(start, stop)`` in its run's buffer."""
        start = self.index * block_tokens
        return start, min(start + block_tokens, self.run.capacity)

    def __repr__(self):
        return f"Block(id={self.block_id}, layer={self.layer_id}, agent={self.agent_id!r})"


class BlockPool:
    """A fixed budget of ``total_blocks`` blocks for one model cache spec."""

    def __init__(self, spec, total_blocks=1000):
        if not isinstance(total_blocks, int) or total_blocks < 1:
            raise SpecError(f"total_blocks={total_blocks!r}: a pool needs a positive whole number of blocks")
        self.spec = spec
        self.total_blocks = total_blocks
        self._free_ids = list(range(total_blocks - 1, -1, -1))  # pop() gives the lowest id
        self._allocated = {}  # block_id -> Block
        self._blocks_by_agent = {}  # agent_id -> set of block ids
        self._lock = threading.Lock()

    # --- allocation -----------------------------------------------------------------------
    def allocate(self, n_blocks, layer_id, agent_id):
        """Give ``agent_id`` ``n_blocks`` contiguous blocks of layer ``layer_id``, or raise.

        Raises ``PoolExhaustedError`` (and allocates nothing) when fewer blocks are free.
        """
        if not isinstance(n_blocks, int) or n_blocks < 1:
            raise ValueError(f"n_blocks={n_blocks!r}: allocate a positive whole number of blocks")
        if not 0 <= layer_id < self.spec.n_layers:
            raise ValueError(f"layer_id={layer_id}: the model has layers 0..{self.spec.n_layers - 1}")
        run = BlockRun(self.spec.kv_shape(self.spec.capacity_tokens(layer_id, n_blocks)), self.spec.dtype, n_blocks)
        with self._lock:
            if n_blocks > len(self._free_ids):
                raise PoolExhaustedError(
                    f"pool exhausted: asked for {n_blocks} blocks for agent {agent_id!r} layer {layer_id}, "
                    f"{len(self._free_ids)} of {self.total_blocks} free; free other agents or make a larger pool"
                )
            ids = self._free_ids[-n_blocks:][::-1]  # the lowest free ids first
            del self._free_ids[-n_blocks:]
            blocks = [Block(block_id, layer_id, agent_id, run, i) for i, block_id in enumerate(ids)]
            self._allocated.update(zip(ids, blocks))
            run.n_allocated = n_blocks
            self._blocks_by_agent.setdefault(agent_id, set()).update(ids)
        return blocks

    def free(self, blocks):
        """Return blocks to the pool. All must be allocated (and distinct), or none is freed."""
        blocks = list(blocks)
        with self._lock:
            allocated = self._allocated
            stale = next((b for b in blocks if allocated.get(b.block_id) is not b), None)
            if stale is not None or len({b.block_id for b in blocks}) != len(blocks):
                what = f"{stale!r} is not allocated" if stale is not None else "a block is listed twice"
                raise BlockOwnershipError(f"cannot free: {what}; nothing was freed")
            for block in blocks:
                self._release(block)

    def free_agent(self, agent_id):
        """Free every block of ``agent_id``; returns how many were freed (0 for an unknown agent)."""
        with self._lock:
            blocks = [self._allocated[i] for i in self._blocks_by_agent.get(agent_id, ())]
            for block in blocks:
                self._release(block)
            return len(blocks)

    def _release(self, block):
        del self._allocated[block.block_id]
        block.run.n_allocated -= 1
        owned = self._blocks_by_agent[block.agent_id]
        owned.discard(block.block_id)
        if not owned:
            del self._blocks_by_agent[block.agent_id]
        self._free_ids.append(block.block_id)

    # --- queries ----------------------------------------------------------------------------
    def is_allocated(self, block):
        """True while ``block`` (this very handle) is allocated."""
        return self._allocated.get(block.block_id) is block

    def agent_ids(self):
        with self._lock:
            return sorted(self._blocks_by_agent, key=str)

    def num_blocks_of(self, agent_id):
        with self._lock:
            return len(self._blocks_by_agent.get(agent_id, ()))

    @property
    def num_free_blocks(self):
        return len(self._free_ids)

    @property
    def num_used_blocks(self):
        return len(self._allocated)

    @property
    def free_bytes(self):
        return self.num_free_blocks * self.spec.bytes_per_block

    @property
    def used_bytes(self):
        return self.num_used_blocks * self.spec.bytes_per_block

    def __repr__(self):
        return f"BlockPool({self.num_used_blocks}/{self.total_blocks} blocks used)"
