"""An agent's block table: which blocks hold each layer of its cache, and how many tokens.

Invariants: every block belongs to ``agent_id``; a layer's blocks are in token order; for a
sliding layer, ``ring_index[layer_id]`` is the ring slot the next token goes to (mlx-lm's
``RotatingKVCache._idx``), and defaults to the temporal layout (slot ``min(n, window)``).
A layer is held either as one whole ``BlockRun`` (what the engine stores: O(1) to add and to
check, block handles made only when someone asks for them) or as a list of blocks added one
by one. ``whole_run(layer_id)`` is known in O(1) either way.
"""

from .errors import BlockOwnershipError


class AgentBlocks:
    """The blocks of one agent's cache, layer by layer, for a context of ``total_tokens``."""

    def __init__(self, agent_id, total_tokens):
        if not isinstance(total_tokens, int) or total_tokens < 0:
            raise ValueError(f"total_tokens={total_tokens!r}: give the context length as a whole number >= 0")
        self.agent_id = agent_id
        self.total_tokens = total_tokens
        self.ring_index = {}
        self._runs = {}  # layer_id -> the BlockRun that is the whole layer
        self._blocks = {}  # layer_id -> [Block] in token order, for layers built block by block
        self._in_order = {}  # layer_id -> True while those blocks are run.blocks 0, 1, 2, ... of one run

    def add_run(self, run):
        """Make ``run`` (all its blocks, in order) the blocks of its layer, which must be empty."""
        self._check_owner(run)
        if run.layer_id in self._runs or run.layer_id in self._blocks:
            raise ValueError(f"layer {run.layer_id} already has blocks: add a whole run to an empty layer")
        self._runs[run.layer_id] = run

    def add_block(self, block):
        """Append ``block`` to its layer's list (blocks must be added in token order)."""
        self._check_owner(block)
        layer_id = block.layer_id
        run = self._runs.pop(layer_id, None)
        if run is not None:  # the layer was a whole run: it becomes a list
            self._blocks[layer_id], self._in_order[layer_id] = list(run.blocks), True
        blocks = self._blocks.setdefault(layer_id, [])
        in_order = self._in_order.get(layer_id, True) and block.index == len(blocks)
        self._in_order[layer_id] = in_order and (not blocks or block.run is blocks[0].run)
        blocks.append(block)

    def whole_run(self, layer_id):
        """The run holding exactly this layer's blocks, in order, or None."""
        run = self._runs.get(layer_id)
        if run is not None:
            return run
        blocks = self._blocks.get(layer_id)
        if blocks and self._in_order[layer_id] and len(blocks) == blocks[0].run.n_blocks:
            return blocks[0].run
        return None

    def num_blocks_for_layer(self, layer_id):
        run = self._runs.get(layer_id)
        return run.n_blocks if run is not None else len(self._blocks.get(layer_id, ()))

    def blocks_for_layer(self, layer_id):
        """The blocks of layer ``layer_id`` in token order (empty if it has none)."""
        run = self._runs.get(layer_id)
        return list(run.blocks) if run is not None else list(self._blocks.get(layer_id, ()))

    def all_blocks(self):
        return [b for layer_id in self.layer_ids for b in self.blocks_for_layer(layer_id)]

    @property
    def layer_ids(self):
        return sorted({*self._runs, *self._blocks})

    @property
    def num_blocks(self):
        return sum(map(self.num_blocks_for_layer, self.layer_ids))

    def _check_owner(self, part):
        if part.agent_id != self.agent_id:
            raise BlockOwnershipError(
                f"{part!r} belongs to agent {part.agent_id!r}, not {self.agent_id!r}: allocate it for this agent"
            )

    def __repr__(self):
        return f"AgentBlocks({self.agent_id!r}, total_tokens={self.total_tokens}, blocks={self.num_blocks})"
