"""An agent's block table: which block runs hold each layer of its cache, and how many tokens.

The unit of storage is the ``BlockRun`` (blocks that lie in one buffer): a layer is a list of
whole runs in token order. What ``engine.store`` makes has exactly one run per layer, which a
zero-copy restore lends as it is (``whole_run``). A layer of several runs is what a fragmented
pool would hold (``synthetic.scattered_copy`` builds one, a run per block, for the seed's
per-block design that EXP-006 and the benchmarks measure); ``gather`` restores it by one copy
of its runs. Runs are kept, not block lists, so adding a run and checking a layer are O(1).

Invariants: every run belongs to ``agent_id``; for a sliding layer, ``ring_index[layer_id]``
is the ring slot the next token goes to (mlx-lm's ``RotatingKVCache._idx``), and defaults to
the temporal layout (slot ``min(n, window)``).
"""

from .errors import BlockOwnershipError, InvalidArgumentError


class AgentBlocks:
    """The runs of one agent's cache, layer by layer, for a context of ``total_tokens``."""

    def __init__(self, agent_id, total_tokens):
        if not isinstance(total_tokens, int) or total_tokens < 0:
            raise InvalidArgumentError(f"total_tokens={total_tokens!r}: give the context length as a whole number >= 0")
        self.agent_id = agent_id
        self.total_tokens = total_tokens
        self.ring_index = {}
        self._runs = {}  # layer_id -> [BlockRun] in token order
        self._whole = {}  # layer_id -> the run that is the whole layer (absent for several runs)

    def add_run(self, run):
        """Append ``run`` (all its blocks, in order) to its layer (runs are added in token order)."""
        if run.agent_id != self.agent_id:
            raise BlockOwnershipError(
                f"{run!r} belongs to agent {run.agent_id!r}, not {self.agent_id!r}: allocate it for this agent"
            )
        runs = self._runs.setdefault(run.layer_id, [])
        runs.append(run)
        if len(runs) == 1:
            self._whole[run.layer_id] = run
        else:
            self._whole.pop(run.layer_id, None)

    def whole_run(self, layer_id):
        """The run holding exactly this layer's blocks, or None (no run, or several)."""
        return self._whole.get(layer_id)

    def runs_for_layer(self, layer_id):
        """The runs of layer ``layer_id`` in token order (empty if it has none)."""
        return list(self._runs.get(layer_id, ()))

    def runs(self):
        """Every run of the table, layer by layer."""
        return [run for layer_id in self.layer_ids for run in self._runs[layer_id]]

    def num_blocks_for_layer(self, layer_id):
        return sum(run.n_blocks for run in self._runs.get(layer_id, ()))

    def blocks_for_layer(self, layer_id):
        """The block handles of layer ``layer_id`` in token order (empty if it has none)."""
        return [block for run in self._runs.get(layer_id, ()) for block in run.blocks]

    def all_blocks(self):
        return [b for layer_id in self.layer_ids for b in self.blocks_for_layer(layer_id)]

    @property
    def layer_ids(self):
        return sorted(self._runs)

    @property
    def num_blocks(self):
        return sum(map(self.num_blocks_for_layer, self.layer_ids))

    def __repr__(self):
        return f"AgentBlocks({self.agent_id!r}, total_tokens={self.total_tokens}, blocks={self.num_blocks})"
