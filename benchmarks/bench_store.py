"""Store time: a live Gemma 3 12B cache parked into fresh blocks, one fused copy per layer."""

from . import workloads


class Store:
    """Each sample stores the same live cache into a fresh, empty pool."""

    params = [2048, 8192]
    param_names = ["context"]
    number = 1
    rounds = 1
    repeat = 10  # a store copies 0.1-0.45 GB: 0.1-0.5 s a call on a 2-core CPU
    timeout = 180
    version = "2"  # 2: a fixed number of samples (the repeat was a time budget)

    def setup(self, context):
        self.cache = workloads.live_cache(context)
        self.engine = workloads.empty_engine(context)

    def time_store(self, context):
        self.engine.store(workloads.AGENT, self.cache)
