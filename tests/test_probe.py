"""``benchmarks/probe.py``'s clock: a call's time in units of a fixed workload's time.

A ``Machine`` stands in for the VM: time moves only when work is done, each unit of work
taking ``speed`` ticks, so the tests can switch the machine between speeds (as this VM's vCPU
switches) and know every reading exactly. The last tests let asv_runner's own
``TimeBenchmark`` (the one ``asv run`` uses) take samples with the clock.
"""

import os
import sys

import pytest
from asv_runner.discovery import disc_benchmarks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.probe import PROBE_ITEMS, ProbeClock, probe  # noqa: E402

PROBE_UNITS = 2
CALL_UNITS = 6  # a call 3 probes long


class Machine:
    """A clock only work moves: a unit of work takes ``speed`` ticks."""

    def __init__(self):
        self.now, self.speed = 0.0, 1.0

    def clock(self):
        return self.now

    def work(self, units):
        self.now += units * self.speed


def probe_clock(machine):
    return ProbeClock(lambda: machine.work(PROBE_UNITS), timer=machine.clock)


def timed(machine, clock, units):
    """``t1 - t0`` of one call of ``units`` between two readings, as ``timeit`` takes it."""
    t0 = clock()
    machine.work(units)
    return clock() - t0


def test_a_reading_is_the_time_between_the_probes_in_probe_units():
    machine = Machine()
    clock = probe_clock(machine)
    assert clock() == 0.0
    assert timed(machine, clock, CALL_UNITS) == CALL_UNITS / PROBE_UNITS
    assert timed(machine, clock, 0) == 0.0  # the probes themselves are not counted


def test_the_machines_speed_cancels_and_a_slower_call_stays_slower():
    machine, samples = Machine(), []
    clock = probe_clock(machine)
    for speed in (1.0, 1.9, 1.0, 1.9):  # the VM's fast and slow stretches
        machine.speed = speed
        samples.append(timed(machine, clock, CALL_UNITS))
    assert samples == pytest.approx([3.0] * 4, rel=1e-12)
    machine.speed = 1.9
    assert timed(machine, clock, 1.5 * CALL_UNITS) == pytest.approx(4.5, rel=1e-12)  # a code change: 1.5x the work


def test_a_call_is_scaled_by_the_slower_of_its_two_probes():
    machine = Machine()
    clock = probe_clock(machine)
    clock()
    machine.work(CALL_UNITS)  # at speed 1
    machine.speed = 2.0  # the probe after the call runs at half speed
    assert clock() == CALL_UNITS / (2 * PROBE_UNITS)
    machine.speed = 0.5  # now the probe before the call was the slower one
    machine.work(CALL_UNITS)
    assert clock() == CALL_UNITS / (2 * PROBE_UNITS) + 0.5 * CALL_UNITS / (2 * PROBE_UNITS)


def test_readings_of_the_real_clock_never_decrease():
    clock = ProbeClock()
    readings = [clock() for _ in range(2000)]
    assert readings[0] == 0.0
    assert all(b >= a for a, b in zip(readings, readings[1:]))
    assert len(probe()) == PROBE_ITEMS


def test_a_clock_too_coarse_for_the_probe_is_refused():
    clock = ProbeClock(timer=lambda: 1.0)
    with pytest.raises(RuntimeError, match="too coarse|cannot time"):
        clock()


SUITE = '''
from benchmarks.probe import ProbeClock
from test_probe import Machine

MACHINE = Machine()


class Switching:
    """Each sample runs at the other speed: setup (untimed, before every sample) switches."""

    number = 1
    repeat = 7
    warmup_time = 0
    timer = ProbeClock(lambda: MACHINE.work(2), timer=MACHINE.clock)

    def setup(self):
        MACHINE.speed = 3.0 if MACHINE.speed == 1.0 else 1.0

    def time_call_probes(self):
        MACHINE.work(6)
'''


@pytest.fixture
def suite(tmp_path, monkeypatch):
    root = tmp_path / "probesuite"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "bench_switching.py").write_text(SUITE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(os.path.dirname(os.path.abspath(__file__)))
    yield root
    for name in [m for m in sys.modules if m.startswith("probesuite")]:
        del sys.modules[name]


def test_asv_takes_exactly_repeat_samples_in_probe_units(suite):
    [benchmark] = [b for b in disc_benchmarks(str(suite)) if b.name.endswith("time_call_probes")]
    assert benchmark.repeat == 7 and isinstance(benchmark.timer, ProbeClock)
    assert benchmark.do_setup() is False
    result = benchmark.do_run()
    benchmark.do_teardown()
    assert result["number"] == 1
    assert result["samples"] == [3.0] * 7  # at either speed: 6 units of work, probes of 2
