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

A store is a plan and a commit: the cache is read (``mlx_lm_caches``, the only reader of
mlx-lm cache objects) into one step per layer (``plan``: adopt, take or copy), and each
layer's copies are made as soon as its step is (``copying.Copier``, which starts evaluating
them a few layers at a time); while the device
copies, ``_commit`` makes the new runs and the table, then evaluates, books the runs and
frees the old ones in one pool step, records the table and hands the cache back.
``plan_store`` gives the same plan without storing (its ``copy_jobs()`` are the store's copies).

Operations on one agent are serialized; different agents proceed in parallel.
"""

import threading

import mlx.core as mx

from . import mlx_lm_caches
from . import restore as strategies
from .agent_blocks import AgentBlocks
from .copying import Copier
from .errors import BlockOwnershipError, CacheMismatchError, UnknownAgentError
from .loans import LoanBook
from .plan import Copy, StorePlan
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
        Each layer's copies are made as soon as it is planned and evaluated a few layers at
        a time, so the device copies the first layers while the rest are planned.
        """
        with self._agent_lock(agent_id):
            total_tokens, lent, layer_steps = self._layer_steps(agent_id, cache)
            steps, copier = [], Copier()
            for step in layer_steps:
                steps.append(step)
                if type(step) is Copy:
                    copier.add(step.jobs)
            plan = StorePlan(total_tokens, steps, lent)
            return self._commit(agent_id, cache, plan, copier.finish())

    def plan_store(self, agent_id, cache):
        """What ``store(agent_id, cache)`` would do, layer by layer (a ``plan.StorePlan``); its
        ``copy_jobs()`` are the store's copies. Changes nothing."""
        with self._agent_lock(agent_id):
            total_tokens, lent, layer_steps = self._layer_steps(agent_id, cache)
            return StorePlan(total_tokens, list(layer_steps), lent)

    def _layer_steps(self, agent_id, cache):
        """``(total_tokens, lent layer ids, the plan's steps, one per layer, as a generator)``;
        the cache is checked as a whole before the first step."""
        total_tokens = mlx_lm_caches.token_count(cache, self.spec)
        old = self._agents.get(agent_id)
        lent = self._loans.lent_layers(agent_id, cache)
        sizes = self.spec.run_sizes(total_tokens)
        steps = (
            mlx_lm_caches.plan_layer(c, self.spec, i, sizes[i], old and old.whole_run(i), i in lent)
            for i, c in enumerate(cache)
        )
        return total_tokens, lent, steps

    def _commit(self, agent_id, cache, plan, copied):
        """Make ``plan`` (whose copies are ``copied``) the agent's state. The new runs and the
        table are made while the device copies; after the evaluation one pool step books the
        runs and frees the old ones (all or nothing), and the table is recorded."""
        layer_arrays = plan.layer_arrays(copied)
        runs = self.pool.new_runs(plan.run_requests(), agent_id)
        table = plan.table(agent_id, runs, layer_arrays)
        given_up = plan.given_up(self._agents.get(agent_id))
        views = mlx_lm_caches.views(cache, plan.lent)
        mx.eval([a for pair in layer_arrays for a in pair] + [a for _, k, v in views for a in (k, v)])
        self.pool.book_runs(runs, given_up)
        self._agents[agent_id] = table
        self._loans.release(agent_id, cache)
        mlx_lm_caches.hand_back(cache, views)
        return table

    # --- reconstruct ------------------------------------------------------------------------
    def reconstruct(self, agent_blocks, strategy=None):
        """mlx-lm cache objects (one per layer) from which the model continues exactly.

        ``agent_blocks``: an agent id, or a block table of this engine's pool (one of another
        pool raises ``BlockOwnershipError``). ``strategy`` is ``"zero_copy"`` (default),
        ``"gather"`` or ``"concat"``.
        Everything returned is evaluated (``mx.eval``) before this returns.
        """
        restore = get_strategy(strategy)
        agent_id = agent_blocks.agent_id if isinstance(agent_blocks, AgentBlocks) else agent_blocks
        with self._agent_lock(agent_id):
            if not isinstance(agent_blocks, AgentBlocks):
                agent_blocks = self.agent_blocks(agent_id)
            runs = _whole_runs(agent_blocks)
            self._check_blocks(agent_blocks, runs)
            self._loans.check(agent_id, runs, lending=restore is strategies.zero_copy)
            cache, lent = [], {}
            n = agent_blocks.total_tokens
            restored = restore(self.spec, agent_blocks)
            make_cache_layer, windows = mlx_lm_caches.make_cache_layer, self.spec.windows  # a hot path
            for layer_id, (layer, (keys, values, zero_copy)) in enumerate(zip(self.spec.layers, restored)):
                ring_index = None
                if windows[layer_id] is not None:  # the default only when missing
                    ring_index = agent_blocks.ring_index.get(layer_id)
                    if ring_index is None:
                        ring_index = mlx_lm_caches.default_ring_index(layer, n)
                cache.append(make_cache_layer(layer, keys, values, n, ring_index))
                if zero_copy:
                    lent[layer_id] = (runs[layer_id], ring_index)
            mx.eval([a for keys, values, _ in restored for a in (keys, values)])
            self._loans.lend(agent_id, cache, n, lent)
            return cache

    def _reconstruct_cache(self, agent_blocks):
        """The seed's name (EXP-006) for ``reconstruct`` with the default strategy."""
        return self.reconstruct(agent_blocks)

    def _check_blocks(self, agent_blocks, whole_runs):
        """Raise unless ``agent_blocks`` (whose ``_whole_runs`` are given) can be restored."""
        agent_id = agent_blocks.agent_id
        current = self._agents.get(agent_id)
        runs = whole_runs.values() if None not in whole_runs.values() else agent_blocks.runs()
        foreign = None if agent_blocks is current else next((r for r in runs if r.pool not in (None, self.pool)), None)
        if foreign is not None:  # (a freed run has no pool: it is refused below)
            raise BlockOwnershipError(
                f"this block table of agent {agent_id!r} holds blocks of another pool ({foreign!r}): "
                "restore it with the engine of the pool that stored it"
            )
        freed = not runs or not all(run.is_intact for run in runs)
        if current is not None and agent_blocks is not current and (freed or _shares_runs(agent_blocks, current)):
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


def _whole_runs(agent_blocks):
    """layer_id -> the run that is that whole layer (None for a layer of several runs)."""
    return {i: agent_blocks.whole_run(i) for i in agent_blocks.layer_ids}


def _shares_runs(table, other):
    held = set(map(id, other.runs()))
    return any(id(run) in held for run in table.runs())
