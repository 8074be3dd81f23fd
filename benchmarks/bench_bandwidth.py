"""Copy efficiency and restore side costs, tracked per commit (targets: docs/perf.md).

All values come from one ``kvbench.restore_costs.measure`` of Gemma 3 12B at 8K (bf16), made
once per commit in ``setup_cache``; each ``track_`` returns one number of it:

- ``*_over_plain_copy``: path time / plain-copy time of the same bytes (1.0 = the copy floor;
  <= 1.25, i.e. >= 80% of plain-copy bandwidth, is the target). Lower is better, as asv's
  regression detection assumes for every series. The gather of a block-per-run table is
  given against a copy of the stored runs (contiguous) and of its own block buffers;
- ``store_bookkeeping_ms``: a store's time beyond its copies (checks, plan, allocation, table):
  a fixed cost per store of 48 layers, which no bandwidth ratio can hold;
- ``first_step_ratio``: first decode step's cache work after a zero-copy restore / after a
  native prefill (<= 1.10 is the target);
- ``*_peak_fraction``: MLX peak memory a restore adds / bytes restored (zero-copy <= 0.05,
  copying <= 1.0);
- ``park_after_growth_over_store``: parking a restored cache that outgrew its blocks (adopted,
  no copy) / storing a live cache (a copy): far below 1 while adoption works.
"""

import mlx.core as mx
from asv_runner.benchmarks.mark import SkipNotImplemented

import kvcache

try:
    from kvbench.restore_costs import measure
except ImportError:  # commits before the costs module existed
    measure = None


class RestoreCosts:
    version = 1
    timeout = 600
    unit = "ratio"
    context = 8192

    def setup_cache(self):
        if measure is None:
            raise NotImplementedError("this commit has no kvbench.restore_costs")
        spec = kvcache.ModelCacheSpec.from_preset("gemma3-12b")
        row = measure(spec, self.context, runs=3, zero_copy_runs=100)
        mx.clear_cache()
        return row

    def track_concat_over_plain_copy(self, row):
        return 1 / row["concat_efficiency"]

    def track_gather_over_plain_copy(self, row):
        return 1 / row["gather_efficiency"]

    def track_gather_over_plain_copy_of_same_buffers(self, row):
        return 1 / _measured(row, "gather_same_buffers_efficiency")

    def track_store_over_plain_copy(self, row):
        return 1 / row["store_efficiency"]

    def track_store_copies_over_plain_copy(self, row):
        return 1 / _measured(row, "store_copies_efficiency")

    def track_store_bookkeeping_ms(self, row):
        return _measured(row, "store_bookkeeping_ms")

    track_store_bookkeeping_ms.unit = "ms"

    def track_first_step_ratio(self, row):
        return row["first_step_ratio"]

    def track_zero_copy_peak_fraction(self, row):
        return row["zero_copy_peak_fraction"]

    def track_concat_peak_fraction(self, row):
        return row["concat_peak_fraction"]

    def track_park_after_growth_over_store(self, row):
        return row["park_after_growth_ms"] / row["store_ms"]


def _measured(row, key):
    """``row[key]``; a commit whose costs did not measure it yet skips the benchmark."""
    if key not in row:
        raise SkipNotImplemented(f"this commit's kvbench.restore_costs does not measure {key}")
    return row[key]
