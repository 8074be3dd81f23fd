"""Pool bookkeeping: allocating and freeing blocks, buffers left lazy (never materialized)."""

from . import workloads


class PoolOps:
    """Allocate one 8K Gemma 3 12B agent's blocks (424, one run per layer), then free them."""

    number = 1
    rounds = 1
    repeat = (50, 1000, 2.0)
    version = "1"

    def setup(self):
        self.pool = workloads.empty_pool(workloads.SEED_CONTEXT)
        spec = self.pool.spec
        self.blocks_per_layer = [spec.blocks_needed(i, workloads.SEED_CONTEXT) for i in range(spec.n_layers)]

    def time_allocate_free(self):
        allocate_and_free(self.pool, self.blocks_per_layer, workloads.AGENT)


def allocate_and_free(pool, blocks_per_layer, agent_id):
    for layer_id, n_blocks in enumerate(blocks_per_layer):
        pool.allocate(n_blocks, layer_id, agent_id)
    pool.free_agent(agent_id)
