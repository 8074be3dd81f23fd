"""Memory one restore of EXP-006's 8K Gemma 3 12B cache needs, by strategy.

``peakmem_`` is asv's peak RSS of the whole process. Setup resets that peak after building
the pool (``workloads.reset_peak_rss``, Linux), so ``peakmem_reference`` (same setup, no
restore) is what the process holds and ``peakmem_reconstruct`` minus it is the restore's
own peak; where the reset is unsupported both include setup's peak. ``track_mlx_peak_bytes``
reads MLX's allocator instead: bytes held at the restore's peak beyond what was held before.
"""

from . import workloads


class ReconstructMemory:
    """The zero-copy restore, and ``gather`` of a fragmented table (``concat`` copies through
    the same code, one copy per layer, and needs the same memory)."""

    params = ["zero_copy", "gather"]
    param_names = ["strategy"]
    timeout = 180
    version = "3"  # 3: zero-filled workloads, adopted by the store (2: a restore that allocates nothing measures 0)

    def setup(self, strategy):
        self.engine, self.table = workloads.restorable(strategy, workloads.SEED_CONTEXT)
        workloads.settle()
        workloads.reset_peak_rss()

    def peakmem_reference(self, strategy):
        pass

    def peakmem_reconstruct(self, strategy):
        self.engine.reconstruct(self.table, strategy)

    def track_mlx_peak_bytes(self, strategy):
        return workloads.restore_peak_bytes(self.engine, self.table, strategy)

    track_mlx_peak_bytes.unit = "bytes"
