"""Store time: a live Gemma 3 12B cache parked into fresh blocks, one fused copy per layer."""

from . import workloads


class Store:
    """Each sample stores the same live cache into a fresh, empty pool."""

    params = [2048, 8192]
    param_names = ["context"]
    number = 1
    rounds = 1
    repeat = (3, 50, 3.0)  # a store copies 0.45-0.8 GB: slow calls on a CPU, so a time budget
    timeout = 180
    version = "1"

    def setup(self, context):
        self.cache = workloads.live_cache(context)
        self.engine = workloads.empty_engine(context)

    def time_store(self, context):
        self.engine.store(workloads.AGENT, self.cache)
