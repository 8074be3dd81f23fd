"""The engine: stores mlx-lm caches into pool blocks and reconstructs them.

Ownership contract (the part that makes restore free):

- ``store(agent_id, cache)`` copies each layer into a fresh ``BlockRun`` (one fused copy per
  layer), except a layer of a cache restored zero-copy from this agent whose arrays still
  *are* the agent's run, or that mlx-lm grew into a new buffer of exactly a run's size: such a
  layer is adopted as it is, so parking a restored cache again copies nothing. The blocks the
  agent gives up count as free for its new state: the pool frees them and books the new runs
  in one step, when the new state is recorded, and ``PoolExhaustedError`` means the new state
  does not fit. A stored cache stays usable and keeps its data, but holds none of the pool's
  arrays: an adopted layer is handed back as views of its data, so its next write copies
  (MLX writes in place only into a buffer nothing else holds) instead of changing the pool.
- ``reconstruct`` with the default ``zero_copy`` strategy *lends* the agent's runs to the
  returned cache: cache and pool hold the same arrays, and decoding writes into them in place
  (no whole-layer copy on the first step). While lent, the agent's stored state is the state
  of that cache: store it back to record how far it advanced. The runs go to one live cache
  at a time: a zero-copy restore while a cache lent before is alive and not stored back raises
  ``AgentOnLoanError`` (store that cache, or drop it, or restore with ``gather``), and so does
  any restore of an agent whose lent cache moved on (or was dropped after moving) without
  being stored (see ``loans``). ``gather`` and ``concat`` return private copies and lend nothing.

Operations on one agent are serialized; different agents proceed in parallel.
"""

import threading

import mlx.core as mx

from .agent_blocks import AgentBlocks
from .cache_layers import (
    check_layer,
    default_ring_index,
    layer_copy_jobs,
    make_cache_layer,
)
from .copying import copy_jobs
from .errors import BlockOwnershipError, CacheMismatchError, UnknownAgentError
from .loans import LoanBook
from . import restore as strategies
from .restore import get_strategy


class BlockPoolBatchEngine:
    """Stores agents' mlx-lm caches in a ``BlockPool`` and restores them."""

    def __init__(self, pool):
        self.pool = pool
        self.spec = pool.spec
        self._agents = {}  # agent_id -> AgentBlocks last stored
        self._loans = LoanBook()
        self._agent_locks = {}
        self._lock = threading.Lock()

    # --- store ------------------------------------------------------------------------------
    def store(self, agent_id, cache):
        """Put ``cache`` (a model's list of mlx-lm caches) into blocks; replaces what the agent had.

        All-or-nothing: if the pool cannot hold the new state (counting the blocks the agent
        gives up as free), ``PoolExhaustedError`` is raised and the agent keeps what it had.
        """
        with self._agent_lock(agent_id):
            total_tokens = self._check_cache(cache)
            old = self._agents.get(agent_id)
            lent = self._loans.lent_layers(agent_id, cache)
            sizes = self.spec.run_sizes(total_tokens)
            plan = []

            def copies():  # planned layer by layer, so the first copies start while the rest are planned
                for layer_id, layer_cache in enumerate(cache):
                    plan.append(self._plan_layer(old, layer_id, layer_cache, sizes[layer_id], layer_id in lent))
                    yield from plan[-1].copy_from or ()

            made = iter(copy_jobs(copies()))
            for step in plan:
                if step.copy_from is not None:
                    step.keys, step.values = next(made), next(made)
            handed_back = [(cache[i], step.keys[:, :, :], step.values[:, :, :]) for i, step in enumerate(plan) if step.lent]
            mx.eval([a for step in plan for a in (step.keys, step.values)] + [a for _, k, v in handed_back for a in (k, v)])
            given_up = [] if old is None else [old.whole_run(i) for i in old.layer_ids if old.whole_run(i) is not plan[i].kept]
            new_runs = self.pool.replace_runs(
                [(step.n_blocks, i) for i, step in enumerate(plan) if step.kept is None], agent_id, given_up
            )
            unused = iter(new_runs)
            table = AgentBlocks(agent_id, total_tokens)
            for layer_id, step in enumerate(plan):
                run = step.kept
                if run is None:
                    run = next(unused)
                    run.keys, run.values = step.keys, step.values
                if step.ring_index is not None:
                    table.ring_index[layer_id] = step.ring_index
                table.add_run(run)
            self._agents[agent_id] = table
            self._loans.release(agent_id, cache)
            for layer_cache, keys, values in handed_back:  # the cache keeps its data, not the pool's arrays
                layer_cache.keys, layer_cache.values = keys, values
            return table

    def _plan_layer(self, old, layer_id, layer_cache, size, lent):
        """How one layer is stored in a run of ``size`` (``spec.run_sizes``): adopted (a ``lent``
        layer's run kept, or its grown buffer taken) or copied."""
        n_blocks, capacity = size
        ring_index = layer_cache._idx if self.spec.windows[layer_id] is not None else None
        if lent:
            kept = self._adoptable(old, layer_id, layer_cache, n_blocks)
            if kept is not None:
                return _StoreStep(kept, 0, layer_cache.keys, layer_cache.values, ring_index, lent=True)
            check_layer(layer_cache, self.spec, layer_id)
            if layer_cache.keys.shape[2] == capacity:  # mlx-lm grew it into exactly the run it needs
                return _StoreStep(None, n_blocks, layer_cache.keys, layer_cache.values, ring_index, lent=True)
        jobs, ring_index = layer_copy_jobs(layer_cache, self.spec, layer_id, capacity)
        return _StoreStep(None, n_blocks, None, None, ring_index, lent=False, copy_from=jobs)

    def _check_cache(self, cache):
        if not isinstance(cache, (list, tuple)) or len(cache) != self.spec.n_layers:
            got = len(cache) if isinstance(cache, (list, tuple)) else type(cache).__name__
            raise CacheMismatchError(
                f"cache has {got} layers, the spec {self.spec.n_layers}: pass the model's whole cache list"
            )
        offsets = {c.offset for c in cache}
        if len(offsets) != 1:
            raise CacheMismatchError(
                f"cache layers disagree on the token count ({sorted(offsets)}): store one model state"
            )
        return offsets.pop()

    def _adoptable(self, old, layer_id, layer_cache, n_blocks):
        """The agent's run of this layer if the cache still holds it and it has ``n_blocks``, else None."""
        run = old.whole_run(layer_id) if old is not None else None
        if run is None or not run.is_intact or layer_cache.keys is not run.keys or layer_cache.values is not run.values:
            return None
        if run.n_blocks < n_blocks:
            return None  # full: copy into a run with room for the next token
        return run

    # --- reconstruct ------------------------------------------------------------------------
    def reconstruct(self, agent_blocks, strategy=None):
        """mlx-lm cache objects (one per layer) from which the model continues exactly.

        ``strategy`` is ``"zero_copy"`` (default), ``"gather"`` or ``"concat"``.
        Everything returned is evaluated (``mx.eval``) before this returns.
        """
        restore = get_strategy(strategy)
        agent_id = agent_blocks.agent_id if isinstance(agent_blocks, AgentBlocks) else agent_blocks
        with self._agent_lock(agent_id):
            if not isinstance(agent_blocks, AgentBlocks):
                agent_blocks = self.agent_blocks(agent_id)
            runs = _runs(agent_blocks)
            self._check_blocks(agent_blocks, runs)
            self._loans.check(agent_id, runs, lending=restore is strategies.zero_copy)
            cache, lent = [], {}
            n = agent_blocks.total_tokens
            restored = restore(self.spec, agent_blocks)
            for layer_id, (layer, (keys, values, zero_copy)) in enumerate(zip(self.spec.layers, restored)):
                ring_index = None
                if self.spec.windows[layer_id] is not None:  # the default only when missing: a hot path
                    ring_index = agent_blocks.ring_index.get(layer_id)
                    if ring_index is None:
                        ring_index = default_ring_index(layer, n)
                cache.append(make_cache_layer(layer, keys, values, n, ring_index))
                if zero_copy:
                    lent[layer_id] = (runs[layer_id], ring_index)
            mx.eval([a for c in cache for a in (c.keys, c.values)])
            self._loans.lend(agent_id, cache, n, lent)
            return cache

    def _reconstruct_cache(self, agent_blocks):
        """The seed's name (EXP-006) for ``reconstruct`` with the default strategy."""
        return self.reconstruct(agent_blocks)

    def _check_blocks(self, agent_blocks, runs):
        """Raise unless ``agent_blocks`` (whose whole ``runs`` are given) can be restored."""
        agent_id = agent_blocks.agent_id
        current = self._agents.get(agent_id)
        freed = not runs or not all(
            run.is_intact if run is not None else self._blocks_allocated(agent_blocks, layer_id)
            for layer_id, run in runs.items()
        )
        if current is not None and agent_blocks is not current and (freed or _shares_blocks(agent_blocks, current)):
            raise BlockOwnershipError(
                f"this block table of agent {agent_id!r} is out of date (the agent was stored again since): "
                f"restore engine.agent_blocks({agent_id!r}) or the agent id"
            )
        if freed:
            raise UnknownAgentError(
                f"agent {agent_id!r} has no blocks in the pool (never stored, or freed): store its cache again"
            )
        if agent_blocks is current:
            return  # made by ``store`` from ``spec.run_sizes``: every layer has room for its tokens
        for layer_id in range(self.spec.n_layers):
            n_blocks = agent_blocks.num_blocks_for_layer(layer_id)
            held = self.spec.tokens_held(layer_id, agent_blocks.total_tokens)
            if n_blocks * self.spec.block_tokens < held:
                raise CacheMismatchError(
                    f"agent {agent_id!r} layer {layer_id} has {n_blocks} blocks, too few for {held} tokens: "
                    f"add spec.blocks_needed({layer_id}, {agent_blocks.total_tokens}) blocks"
                )

    def _blocks_allocated(self, agent_blocks, layer_id):
        return all(self.pool.is_allocated(b) for b in agent_blocks.blocks_for_layer(layer_id))

    # --- agents -----------------------------------------------------------------------------
    def agent_blocks(self, agent_id):
        """The block table of ``agent_id``'s last stored cache."""
        try:
            return self._agents[agent_id]
        except KeyError:
            raise UnknownAgentError(
                f"agent {agent_id!r} has nothing stored (never stored, or freed): store its cache first"
            ) from None

    def agent_ids(self):
        return sorted(self._agents, key=str)

    def free_agent(self, agent_id):
        """Free every block of ``agent_id``; returns how many were freed."""
        with self._agent_lock(agent_id):
            if agent_id not in self._agents and not self.pool.num_blocks_of(agent_id):
                raise UnknownAgentError(f"agent {agent_id!r} has nothing stored: nothing to free")
            self._agents.pop(agent_id, None)
            self._loans.forget(agent_id)
            return self.pool.free_agent(agent_id)

    def _agent_lock(self, agent_id):
        with self._lock:
            return self._agent_locks.setdefault(agent_id, threading.RLock())


class _StoreStep:
    """One layer of a store: a ``kept`` run (adopted as it is) or ``n_blocks`` to allocate for
    ``keys``/``values``; ``lent`` says the arrays are the loaned cache's own (adopted, no copy).
    A copied layer's arrays are made from its ``copy_from`` jobs (``copying.copy_jobs``)."""

    __slots__ = ("kept", "n_blocks", "keys", "values", "ring_index", "lent", "copy_from")

    def __init__(self, kept, n_blocks, keys, values, ring_index, lent, copy_from=None):
        self.kept, self.n_blocks, self.keys, self.values = kept, n_blocks, keys, values
        self.ring_index, self.lent, self.copy_from = ring_index, lent, copy_from


def _runs(agent_blocks):
    """layer_id -> the run holding exactly that layer's blocks (None for a scattered layer)."""
    return {i: agent_blocks.whole_run(i) for i in agent_blocks.layer_ids}


def _shares_blocks(table, other):
    ids = {b.block_id for b in other.all_blocks()}
    return any(b.block_id in ids for b in table.all_blocks())
