"""The p95 tracker, stage by stage: ``read`` (asv results, git order) -> ``series`` and
``stats`` (p95 per commit, intervals) -> ``detect`` (change points, the alert rule, flags)
-> ``render`` (table, PR comment), ``overview`` + ``html_page`` (the dashboard page's rows,
the page). ``p95``, ``gate`` and ``power`` are the command-line entry points."""
