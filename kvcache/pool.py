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

from .errors import BlockOwnershipError, InvalidArgumentError, PoolExhaustedError, SpecError


class BlockRun:
    """One buffer of keys and one of values holding ``n_blocks`` consecutive blocks of a layer.

    ``capacity`` is its token slots. ``keys``/``values`` are whatever the engine stored; a run
    nothing was stored into reads as zeros, made on first access in the reading thread (MLX
    binds an unevaluated array to the stream of the thread that made it).
    ``block_ids`` are its blocks in order; ``blocks`` their handles, made on first use (a store
    books a whole run without making a handle per block). Which of its blocks are still
    allocated is kept here, by the pool under its lock (``pool`` is None until the run is booked
    and once all are freed): a run is intact while booked and none is freed, which checks a
    whole layer at once.
    """

    _handles_lock = threading.Lock()

    def __init__(self, shapes, dtype, layer_id, agent_id, n_blocks):
        self.shapes = shapes
        self.dtype = dtype
        self.capacity = shapes[0][2]
        self.layer_id = layer_id
        self.agent_id = agent_id
        self.n_blocks = n_blocks
        self.block_ids = None  # given, with ``pool``, when the run is booked (``BlockPool.book_runs``)
        self.pool = None
        self.freed = set()  # indices of blocks freed one by one
        self._keys = self._values = self._blocks = None

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
    def blocks(self):
        """The run's block handles in order, a tuple: always the same objects."""
        if self._blocks is None:
            with self._handles_lock:
                if self._blocks is None:
                    self._blocks = tuple(Block(block_id, self, i) for i, block_id in enumerate(self.block_ids))
        return self._blocks

    @property
    def n_allocated(self):
        return self.n_blocks - len(self.freed) if self.pool is not None else 0

    @property
    def is_intact(self):
        return self.pool is not None and not self.freed

    def __repr__(self):
        return f"BlockRun(layer={self.layer_id}, agent={self.agent_id!r}, blocks={self.n_blocks})"


class Block:
    """A block handle: its id, owner, and place in a ``BlockRun``. Its data is a view of the run."""

    __slots__ = ("block_id", "index", "run")

    def __init__(self, block_id, run, index):
        self.block_id = block_id
        self.run = run
        self.index = index

    @property
    def layer_id(self):
        return self.run.layer_id

    @property
    def agent_id(self):
        return self.run.agent_id

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
        self._free_ids = list(range(total_blocks - 1, -1, -1))  # the end of the list is the lowest id
        self._runs_by_agent = {}  # agent_id -> set of its runs with blocks still allocated
        self._shapes = {}  # (n_blocks, layer_id) -> a run's (keys, values) shapes
        self._lock = threading.Lock()

    # --- allocation -----------------------------------------------------------------------
    def allocate(self, n_blocks, layer_id, agent_id):
        """Give ``agent_id`` ``n_blocks`` contiguous blocks of layer ``layer_id``, or raise.

        Raises ``PoolExhaustedError`` (and allocates nothing) when fewer blocks are free.
        """
        return list(self.allocate_run(n_blocks, layer_id, agent_id).blocks)

    def allocate_run(self, n_blocks, layer_id, agent_id):
        """``allocate``, returning the ``BlockRun`` (its handles are made only when asked for)."""
        return self.allocate_runs([(n_blocks, layer_id)], agent_id)[0]

    def allocate_runs(self, requests, agent_id):
        """One ``BlockRun`` per ``(n_blocks, layer_id)`` request, for ``agent_id``: all or none.

        Raises ``PoolExhaustedError`` (and allocates nothing) when the requests need more
        blocks than are free.
        """
        return self.book_runs(self.new_runs(requests, agent_id), ())

    def new_runs(self, requests, agent_id):
        """One unbooked ``BlockRun`` of ``agent_id`` per ``(n_blocks, layer_id)`` request: it holds
        no block until ``book_runs``, and can be filled and put in a table before."""
        dtype = self.spec.dtype
        return [
            BlockRun(self._run_shapes(n_blocks, layer_id), dtype, layer_id, agent_id, n_blocks)
            for n_blocks, layer_id in requests
        ]

    def book_runs(self, runs, given_up):
        """Give the unbooked ``runs`` their blocks, freeing the runs ``given_up`` in the same step.

        The blocks of ``given_up`` still allocated count as free for ``runs``, so an agent whose
        new state fits the pool once its old runs are gone always gets it. Raises
        ``PoolExhaustedError`` (and frees and books nothing) when ``runs`` need more. Returns ``runs``.
        """
        wanted = sum(run.n_blocks for run in runs)
        with self._lock:
            booked = next((run for run in runs if run.block_ids is not None), None)
            if booked is not None:
                raise BlockOwnershipError(f"{booked!r} is booked already: make new runs with new_runs")
            released = [run for run in given_up if run.pool is self]
            giving_up = sum(run.n_allocated for run in released)
            if wanted > len(self._free_ids) + giving_up:
                what = f"layer {runs[0].layer_id}" if len(runs) == 1 else f"{len(runs)} layers"
                gives = f" and {giving_up} it gives up" if giving_up else ""
                raise PoolExhaustedError(
                    f"pool exhausted: asked for {wanted} blocks for agent {runs[0].agent_id!r} ({what}), "
                    f"{len(self._free_ids)} of {self.total_blocks} free{gives}; free other agents or make a larger pool"
                )
            for run in released:
                self._free_whole(run)
            for run in runs:
                run.block_ids = self._free_ids[-run.n_blocks:][::-1]  # the lowest free ids first
                del self._free_ids[-run.n_blocks:]
                run.pool = self
                self._runs_by_agent.setdefault(run.agent_id, set()).add(run)
        return runs

    def free(self, blocks):
        """Return blocks to the pool. All must be allocated (and distinct), or none is freed."""
        blocks = list(blocks)
        with self._lock:
            stale = next((b for b in blocks if not self._holds(b)), None)
            if stale is not None or len({b.block_id for b in blocks}) != len(blocks):
                what = f"{stale!r} is not allocated" if stale is not None else "a block is listed twice"
                raise BlockOwnershipError(f"cannot free: {what}; nothing was freed")
            for block in blocks:
                block.run.freed.add(block.index)
                self._free_ids.append(block.block_id)
                if len(block.run.freed) == block.run.n_blocks:
                    self._retire(block.run)

    def free_run(self, run):
        """Free the blocks of ``run`` still allocated; returns how many."""
        return self.free_runs([run])

    def free_runs(self, runs):
        """Free the blocks of every run in ``runs`` still allocated; returns how many."""
        with self._lock:
            return sum(self._free_whole(run) for run in runs if run.pool is self)

    def free_agent(self, agent_id):
        """Free every block of ``agent_id``; returns how many were freed (0 for an unknown agent)."""
        with self._lock:
            return sum(self._free_whole(run) for run in list(self._runs_by_agent.get(agent_id, ())))

    def _run_shapes(self, n_blocks, layer_id):
        """Shapes of the keys and values of a run of ``n_blocks`` blocks of layer ``layer_id``."""
        if not isinstance(n_blocks, int) or n_blocks < 1:
            raise InvalidArgumentError(f"n_blocks={n_blocks!r}: allocate a positive whole number of blocks")
        if not isinstance(layer_id, int) or not 0 <= layer_id < self.spec.n_layers:
            raise InvalidArgumentError(f"layer_id={layer_id!r}: the model has layers 0..{self.spec.n_layers - 1}")
        if (n_blocks, layer_id) not in self._shapes:
            self._shapes[(n_blocks, layer_id)] = self.spec.kv_shape(self.spec.capacity_tokens(layer_id, n_blocks))
        return self._shapes[(n_blocks, layer_id)]

    def _free_whole(self, run):
        ids = [i for k, i in enumerate(run.block_ids) if k not in run.freed] if run.freed else run.block_ids
        self._free_ids.extend(ids)
        self._retire(run)
        return len(ids)

    def _retire(self, run):
        """Forget ``run``, all of whose blocks are free now (the caller holds the lock)."""
        run.pool = None
        runs = self._runs_by_agent[run.agent_id]
        runs.discard(run)
        if not runs:
            del self._runs_by_agent[run.agent_id]

    def _holds(self, block):
        run = block.run
        return run.pool is self and block.index not in run.freed

    # --- queries ----------------------------------------------------------------------------
    def is_allocated(self, block):
        """True while ``block`` (this very handle) is allocated."""
        return self._holds(block)

    def agent_ids(self):
        with self._lock:
            return sorted(self._runs_by_agent, key=str)

    def num_blocks_of(self, agent_id):
        with self._lock:
            return sum(run.n_allocated for run in self._runs_by_agent.get(agent_id, ()))

    @property
    def num_free_blocks(self):
        return len(self._free_ids)

    @property
    def num_used_blocks(self):
        return self.total_blocks - len(self._free_ids)

    @property
    def free_bytes(self):
        return self.num_free_blocks * self.spec.bytes_per_block

    @property
    def used_bytes(self):
        return self.num_used_blocks * self.spec.bytes_per_block

    def __repr__(self):
        return f"BlockPool({self.num_used_blocks}/{self.total_blocks} blocks used)"
