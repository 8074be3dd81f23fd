"""The p95 tracker, stage by stage: ``read`` (asv results, git order) -> ``series`` and
``stats`` (p95 per commit, intervals) -> ``detect`` (change points, the alert rule, flags)
-> ``render`` / ``html_page`` (table, PR comment, dashboard page). ``p95``, ``gate`` and
``power`` are the command-line entry points."""
