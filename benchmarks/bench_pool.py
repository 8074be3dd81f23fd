"""Pool bookkeeping: allocating and freeing blocks, buffers left lazy (never materialized).

Pure host work: ``PoolOpsProbes`` times it in probes (``probe.ProbeClock``), which the
machine's speed phases do not move; ``PoolOps`` keeps its time in seconds."""

from . import probe, workloads


class _OneAgentsBlocks:
    """Setup: an empty pool, and the blocks per layer of one 8K Gemma 3 12B agent (424)."""

    number = 1
    repeat = 500

    def setup(self):
        self.pool = workloads.empty_pool(workloads.SEED_CONTEXT)
        spec = self.pool.spec
        self.blocks_per_layer = [spec.blocks_needed(i, workloads.SEED_CONTEXT) for i in range(spec.n_layers)]


class PoolOps(_OneAgentsBlocks):
    """Allocate one 8K Gemma 3 12B agent's blocks (one run per layer), then free them."""

    rounds = 1
    version = "2"  # 2: a fixed number of samples (the repeat was a time budget)

    def time_allocate_free(self):
        allocate_and_free(self.pool, self.blocks_per_layer, workloads.AGENT)


class PoolOpsProbes(_OneAgentsBlocks):
    """The same, in probes, over 2 processes."""

    rounds = 2
    timer = probe.ProbeClock()
    version = "1"

    def time_allocate_free_probes(self):
        allocate_and_free(self.pool, self.blocks_per_layer, workloads.AGENT)


def allocate_and_free(pool, blocks_per_layer, agent_id):
    for layer_id, n_blocks in enumerate(blocks_per_layer):
        pool.allocate(n_blocks, layer_id, agent_id)
    pool.free_agent(agent_id)
