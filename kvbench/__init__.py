"""kvbench: the performance-regression tracker around kvcache (``kvcache-bench``)."""
