"""Reading asv's results into p95 measurements, through ``asv.results.Results``.

Only three kinds of benchmark carry a p95 (asv's naming decides the kind):

- ``time_*``: the raw samples (``asv run --record-samples``; ``asv continuous`` keeps them
  by default), seconds per sample, read as milliseconds. Samples that are not finite
  numbers are dropped. Without samples the result falls back to asv's median, marked
  ``source="median"``.
- ``track_*p95*_ms``: the benchmark itself returns a p95 in milliseconds (``source="track"``).
- ``track_*instructions*``: instructions per call, counted (``benchmarks/instructions.py``):
  a track value like the one above, in instructions, not ms (``source="track"``).

Results files are only read, never written. A file that cannot be read is reported
through ``warn`` and skipped; the others are still read.
"""

import itertools
import json
import os
from dataclasses import dataclass

import numpy as np
from asv.results import Results
from asv.util import UserError as AsvUserError

from .errors import UserError
from .stats import split_rounds

SECONDS_TO_MS = 1000.0


@dataclass(frozen=True)
class Measurement:
    """One benchmark (one parameter combination) at one commit, machine and environment."""

    benchmark: str  # asv's name, with the parameters as asv shows them: name('zero_copy', 8192)
    machine: str
    env: str
    commit: str  # full hash
    date: int  # ms since the epoch (asv's commit date)
    source: str  # "samples", "track" or "median"
    samples: tuple  # empty unless source == "samples"
    value: float  # the track value or asv's median (for "samples", asv's median too)
    number: int  # calls averaged into one sample (1 = a sample is one call)
    rounds: int = 1  # processes the samples came from, one after the other (asv's ``rounds``)
    version: str | None = None  # the benchmark's asv ``version`` when it was measured
    unit: str = "ms"  # of ``samples`` and ``value``: "ms" for time, "probes" (``unit_of``), a track's own
    round_size: int | None = None  # samples a round takes (an integer ``repeat``), None when not fixed

    @property
    def sample_rounds(self):
        """The samples as one sequence per round (``stats.split_rounds``)."""
        return split_rounds(self.samples, self.rounds, self.round_size)


def carries_p95(name):
    """Whether the benchmark named ``name`` (asv's full dotted name) yields a p95."""
    function = name.rsplit(".", 1)[-1]
    return function.startswith("time_") or (
        function.startswith("track_") and ("p95" in function and function.endswith("_ms") or "instructions" in function)
    )


def unit_of(name, described=None):
    """The unit a benchmark's values are read in: "ms" for ``time_`` (asv's seconds, x1000) and
    ``track_*_ms``; "probes" for a ``time_`` benchmark named with ``probes`` (its clock counts
    the machine's speed probe, not seconds: ``benchmarks/probe.py``); else the unit asv's
    benchmarks.json gives the track (``described``: its entry), or "" when unknown."""
    function = name.rsplit(".", 1)[-1]
    if function.startswith("time_"):
        return "probes" if "probes" in function else "ms"
    if function.endswith("_ms"):
        return "ms"
    return str((described or {}).get("unit") or "")


def read_measurements(results_dir, warn):
    """All p95-carrying measurements under ``results_dir`` (every machine, every commit).

    Raises ``UserError`` when the directory is missing or holds no readable results file.
    """
    if not os.path.isdir(results_dir):
        raise UserError(
            f"results directory {results_dir} does not exist: run `asv run --record-samples` first, or pass --results DIR"
        )
    paths = list(_result_paths(results_dir))
    suite = describe_suite(results_dir) or {}
    measurements, n_read = [], 0
    for path in paths:
        try:
            results = Results.load(path)
            found = list(_measurements_of(results, suite))
        except (AsvUserError, OSError, KeyError, TypeError, ValueError, AttributeError) as error:
            warn(f"skipping unreadable results file {path}: {_one_line(error)}")
            continue
        n_read += 1
        measurements.extend(found)
    if n_read == 0:
        raise UserError(
            f"no readable asv results in {results_dir}: run `asv run --record-samples` first, or pass --results DIR"
        )
    return measurements


def describe_suite(results_dir):
    """``{benchmark name: asv's description}`` of the suite as asv last discovered it
    (benchmarks.json beside the results: each benchmark's version, rounds, unit, ...), or None
    when that file is missing or unreadable."""
    try:
        with open(os.path.join(results_dir, "benchmarks.json"), encoding="utf-8") as f:
            described = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(described, dict):
        return None
    return {name: entry for name, entry in described.items() if isinstance(entry, dict)}


def current_versions(results_dir):
    """``{benchmark name: version}`` of the suite (``describe_suite``), or None when unknown.
    asv shows a benchmark's results of this version only, and none of a benchmark not in it."""
    described = describe_suite(results_dir)
    return None if described is None else {name: entry.get("version") for name, entry in described.items()}


def _rounds(described):
    """A benchmark's rounds (processes) from its description; 1 when unknown."""
    rounds = described.get("rounds", 1)
    return rounds if isinstance(rounds, int) and rounds > 0 else 1


def _round_size(described):
    """Samples a round takes: an integer ``repeat`` (asv takes exactly that many a round);
    None for a ``(min, max, time)`` repeat or 0 (asv's own choice), whose rounds vary."""
    repeat = described.get("repeat")
    return repeat if isinstance(repeat, int) and not isinstance(repeat, bool) and repeat > 0 else None


def _result_paths(results_dir):
    """asv's layout: RESULTS/MACHINE/HASH-ENV.json beside RESULTS/MACHINE/machine.json (files at
    the top, such as benchmarks.json and the verdicts, are not results)."""
    for machine in sorted(os.listdir(results_dir)):
        machine_dir = os.path.join(results_dir, machine)
        if not os.path.isdir(machine_dir):
            continue
        for filename in sorted(os.listdir(machine_dir)):
            if filename.endswith(".json") and filename != "machine.json":
                yield os.path.join(machine_dir, filename)


def _measurements_of(results, suite):
    machine = results.params["machine"]
    for name in sorted(results.get_all_result_keys()):
        if not carries_p95(name):
            continue
        params = results.get_result_params(name)
        combos = list(itertools.product(*params))
        values = results.get_result_value(name, params)
        samples = results.get_result_samples(name, params)
        stats = results.get_result_stats(name, params)
        for combo, value, sample, stat in zip(combos, values, samples, stats):
            if value is None and not sample:  # failed or skipped: nothing measured
                continue
            value = float("nan") if value is None else float(value)
            found = _measurement(name, combo, machine, results, value, sample, stat, suite.get(name, {}))
            if found.samples or found.value == found.value:  # a NaN value and no sample: nothing
                yield found


def _measurement(name, combo, machine, results, value, sample, stat, described):
    is_time = name.rsplit(".", 1)[-1].startswith("time_")
    unit = unit_of(name, described)
    scale = SECONDS_TO_MS if unit == "ms" and is_time else 1.0
    if not is_time:
        source, samples = "track", ()
    elif sample:
        values = np.asarray([s if s is not None else np.nan for s in sample], dtype=float) * scale
        source, samples = "samples", tuple(values[np.isfinite(values)].tolist())  # NaN: not a time
        if not samples:
            source = "median"
    else:
        source, samples = "median", ()
    return Measurement(
        benchmark=f"{name}({', '.join(combo)})" if combo else name,
        machine=machine,
        env=results.env_name,
        commit=results.commit_hash,
        date=results.date or 0,
        source=source,
        samples=samples,
        value=value * scale,
        number=int((stat or {}).get("number") or 1),
        rounds=_rounds(described),
        version=results.benchmark_version.get(name),
        unit=unit,
        round_size=_round_size(described),
    )


def _one_line(error):
    return " ".join(str(error).split())
