"""kvbench: the library's own measurements, ``kvcache-bench exp006`` and ``costs`` (the
tracker around them is ``kvtracker``, ``kvcache-tracker``)."""
