"""Restore time: an agent's stored blocks back into mlx-lm cache objects, evaluated.

Every sample is one ``reconstruct`` call (``number = 1``), so the p95 of a result's samples
(``asv run --record-samples``; ``kvcache-bench p95``) is the p95 of single restores. Each
benchmark runs in ``rounds = 2`` processes, half its samples in each: a commit's samples then
hold the noise between processes too (a busy or slow process), which the gate's interval
and the change-point detection need; asv interleaves the rounds of the commits it measures.
"""

from . import workloads


class Reconstruct8k:
    """EXP-006's case: one agent's 8K Gemma 3 12B cache (bf16, 832 MiB of KV).

    ``zero_copy`` hands the pool's runs to the cache; ``concat`` is the seed's name for the
    copying restore: one full copy of the layers (the seed's design, one concatenate input per
    block, is measured as ``gather`` of a scattered table: ``bench_bandwidth``).
    """

    params = ["zero_copy", "concat"]
    param_names = ["strategy"]
    number = 1
    rounds = 2
    repeat = (5, 100, 5.0)  # per round: at least 5 samples, at most 100, stop adding after 5 s
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
    rounds = 2
    repeat = (2, 50, 1.0)  # per round; copies of 0.45-1.3 GB take 0.5-2.5 s a call on a 2-core CPU
    timeout = 180
    version = "1"

    def setup(self, strategy, context):
        self.engine, self.table = workloads.restorable(strategy, context)

    def time_reconstruct(self, strategy, context):
        self.engine.reconstruct(self.table, strategy)
