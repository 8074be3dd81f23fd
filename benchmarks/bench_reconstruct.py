"""Restore time: an agent's stored blocks back into mlx-lm cache objects, evaluated.

Every sample is one ``reconstruct`` call (``number = 1``), so the p95 of a result's samples
(``asv run --record-samples``; ``kvcache-bench p95``) is the p95 of single restores.
"""

from . import workloads


class Reconstruct8k:
    """EXP-006's case: one agent's 8K Gemma 3 12B cache (bf16, 832 MiB of KV).

    ``zero_copy`` hands the pool's runs to the cache; ``concat`` is the seed's name for the
    copying restore: one full copy (~1 s a call on a 2-core CPU). Until f04e9cc it was the
    seed's design, one concatenate input per block; since then it is ``gather``.
    """

    params = ["zero_copy", "concat"]
    param_names = ["strategy"]
    number = 1
    rounds = 1
    repeat = (10, 200, 10.0)  # at least 10 samples, at most 200, stop adding after 10 s
    timeout = 180
    version = "1"

    def setup(self, strategy):
        self.engine, self.table = workloads.restorable(strategy, workloads.SEED_CONTEXT)

    def time_reconstruct_8k(self, strategy):
        self.engine.reconstruct(self.table, strategy)


class ReconstructContexts:
    """Restore time against context length, for every strategy.

    ``gather`` restores a table whose every block is a run of its own, the case it exists for
    (a fragmented pool); ``zero_copy`` and ``concat`` restore the engine's stored table.
    """

    params = [["zero_copy", "gather", "concat"], workloads.CONTEXTS]
    param_names = ["strategy", "context"]
    number = 1
    rounds = 1
    repeat = (3, 100, 2.0)  # copies of 0.45-1.3 GB take 0.5-2.5 s a call on a 2-core CPU
    timeout = 180
    version = "1"

    def setup(self, strategy, context):
        self.engine, self.table = workloads.restorable(strategy, context)

    def time_reconstruct(self, strategy, context):
        self.engine.reconstruct(self.table, strategy)
