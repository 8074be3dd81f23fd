"""An agent's block table: which blocks hold each layer of its cache, and how many tokens.

Invariants: every block belongs to ``agent_id``; a layer's blocks are in token order; for a
sliding layer, ``ring_index[layer_id]`` is the ring slot the next token goes to (mlx-lm's
``RotatingKVCache._idx``), and defaults to the temporal layout (slot ``min(n, window)``).
``whole_run(layer_id)`` is known in O(1): it is kept up to date as blocks are added.
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
        self._blocks = {}  # layer_id -> [Block] in token order
        self._in_order = {}  # layer_id -> True while the blocks are run.blocks 0, 1, 2, ... of one run

    def add_block(self, block):
        """Append ``block`` to its layer's list (blocks must be added in token order)."""
        if block.agent_id != self.agent_id:
            raise BlockOwnershipError(
                f"{block!r} belongs to agent {block.agent_id!r}, not {self.agent_id!r}: allocate it for this agent"
            )
        blocks = self._blocks.setdefault(block.layer_id, [])
        in_order = self._in_order.get(block.layer_id, True) and block.index == len(blocks)
        self._in_order[block.layer_id] = in_order and (not blocks or block.run is blocks[0].run)
        blocks.append(block)

    def add_blocks(self, blocks):
        """``add_block`` for each of ``blocks``; a whole run given in order into an empty layer is one step."""
        if not blocks:
            return
        first = blocks[0]
        run, layer_id = first.run, first.layer_id
        if layer_id not in self._blocks and len(blocks) == run.n_blocks and all(
            b.run is run and b.index == i and b.agent_id == self.agent_id and b.layer_id == layer_id
            for i, b in enumerate(blocks)
        ):
            self._blocks[layer_id] = list(blocks)
            self._in_order[layer_id] = True
            return
        for block in blocks:
            self.add_block(block)

    def whole_run(self, layer_id):
        """The run holding exactly this layer's blocks, in order, or None."""
        blocks = self._blocks.get(layer_id)
        if blocks and self._in_order[layer_id] and len(blocks) == blocks[0].run.n_blocks:
            return blocks[0].run
        return None

    def num_blocks_for_layer(self, layer_id):
        return len(self._blocks.get(layer_id, ()))

    def blocks_for_layer(self, layer_id):
        """The blocks of layer ``layer_id`` in token order (empty if it has none)."""
        return list(self._blocks.get(layer_id, ()))

    def all_blocks(self):
        return [b for layer_id in sorted(self._blocks) for b in self._blocks[layer_id]]

    @property
    def layer_ids(self):
        return sorted(self._blocks)

    @property
    def num_blocks(self):
        return sum(len(blocks) for blocks in self._blocks.values())

    def __repr__(self):
        return f"AgentBlocks({self.agent_id!r}, total_tokens={self.total_tokens}, blocks={self.num_blocks})"
