"""A clock that counts the machine's speed probe instead of seconds, for host-bound benchmarks.

Why: on the project's VM (and likely on any shared or power-managed machine) the CPU runs at
two speeds about 1.9x apart, in stretches of 0.1 s to seconds, whatever the process does: a
plain Python loop slows by the same factor at the same moments as a restore
(docs/experiments/2026-12-04-speed-modes.md). A time measured in seconds is then mostly
which speed the machine was in. The probe, a fixed piece of pure-Python work, is timed right
before and right after each timed call; the call's time divided by the larger of the two is
its time in *probes*, which the machine's speed divides out of, as a cycle counter divides
out the clock frequency. What the code does stays in it: a call that does more work, or
waits, is that much longer in probes too.

It is for host-bound work (Python and MLX bookkeeping, such as a zero-copy restore). A copy
is bound by memory bandwidth, which the probe does not measure: time copies in seconds.

asv takes it as a benchmark's ``timer`` (any monotonic clock: ``timeit`` calls it before and
after the timed statement and keeps the difference); asv labels the samples seconds.
"""

import time

PROBE_ITEMS = 300  # a dict of 300 (int, str) entries: about 40 us on the project's VM


def probe():
    """The fixed work whose time is the unit: build a small dict of ints and strings."""
    table = {}
    for i in range(PROBE_ITEMS):
        table[i] = (i, str(i))
    return table


class ProbeClock:
    """A monotonic clock in probe units.

    Each call runs the probe once and returns the clock's reading. Between two calls, the
    reading advances by the time from the end of the first call's probe to the start of the
    second call's, divided by the time of the slower of the two probes: the interval in probes,
    the probes themselves not counted (the slower one: docs/benchmarks.md, "Probe units"). So
    for ``t0 = clock(); f(); t1 = clock()``, ``t1 - t0`` is ``f``'s time over the probe's time
    around it. The reading never decreases. ``work`` is the probe, ``timer`` the clock it is timed by.
    """

    def __init__(self, work=probe, timer=time.perf_counter):
        self._work, self._timer = work, timer
        self.reading = 0.0
        self._since = None  # when the previous call's probe ended
        self._probe_before = None  # how long it took

    def __call__(self):
        now = self._timer()
        self._work()
        took = self._timer() - now
        if took <= 0:
            raise RuntimeError("ProbeClock: the timer is too coarse to time the probe; give it a finer timer")
        if self._since is not None:
            self.reading += (now - self._since) / max(self._probe_before, took)
        self._probe_before = took
        self._since = self._timer()
        return self.reading
