"""Series replayed from recorded noise, with planted changes (what ``kvcache-tracker power`` runs).

Recorded noise (``tests/data/noise-*.json``, written by ``kvcache-tracker power --record-from``
from ``scripts/record-noise.sh``'s runs): per benchmark, the samples (ms) of each process
(asv round) of several asv runs of ONE commit. A replayed commit is measured as the suite measures one: as many
processes as a recorded run had (``Noise.rounds``), each drawn at random from all the recorded
ones, with all its samples; its changes are then planted into those samples, which stay in
round order (as asv appends them). A ``track`` benchmark (one value per run) is replayed as one
drawn value.

Scenarios plant, at commit ``START`` of ``LENGTH``: median steps (every call slower), tail-only
steps (1 call in 10 slower, by as much as raises the recorded p95 by the given fraction),
creep, slow-measured commits (every call of that commit's first measurement slower), steps
whose next commit is first measured as if the step were not there, and steps that are masked
or reverted. ``truth`` says where a detector should flag.
"""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .atomic import write_text_atomically
from .read import read_measurements

LENGTH = 50
START = 30
SLOW_MEASURED = 1.4  # a slow-measured commit: every call 40% slower (one run in 6 here was)
CREEP_COMMITS = 15
RECORDED = (  # the benchmarks kept from a recording: host-bound restores in probes and in time, a copy, tracks
    "bench_reconstruct.ReconstructProbes.time_reconstruct_probes(8192)",
    "bench_reconstruct.Reconstruct8k.time_reconstruct_8k('zero_copy')",
    "bench_reconstruct.ReconstructCopies.time_reconstruct('gather', 8192)",
    "bench_pool.PoolOpsProbes.time_allocate_free_probes",
    "bench_tail.RestoreTail.track_p95_ms('zero_copy')",
)


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "median", "tail", "creep", "slow" (planted changes); "none"
    size: float = 0.0
    slow_commits: tuple = ()  # offsets from START of slow-measured commits
    fast_commits: tuple = ()  # offsets from START of commits measured as if the step were not there
    revert_after: int | None = None  # commits after START at which the step is undone

    def truth(self):
        """Indices where a flag is right (a step's first commit), or () when none is."""
        return () if self.kind in ("none", "slow") else (START,)


SCENARIOS = [
    Scenario("no change", "none"),
    Scenario("median +5%", "median", 0.05),
    Scenario("median +10%", "median", 0.10),
    Scenario("median +20%", "median", 0.20),
    Scenario("median +50%", "median", 0.50),
    Scenario("tail-only p95 +10%", "tail", 0.10),
    Scenario("tail-only p95 +20%", "tail", 0.20),
    Scenario("tail-only p95 +50%", "tail", 0.50),
    Scenario("creep +1%/commit x15", "creep", 0.01),
    Scenario("one slow-measured commit", "slow", slow_commits=(0,)),
    Scenario("2-commit slow burst, recovered", "slow", slow_commits=(0, 1)),
    Scenario("median +20% masked by a slow commit 2 before", "median", 0.20, slow_commits=(-2,)),
    Scenario("median +20%, a slow-measured commit just before", "median", 0.20, slow_commits=(-1,)),
    Scenario("median +20%, its next commit measured at the old level", "median", 0.20, fast_commits=(1,)),
    Scenario("median +20% reverted 8 commits later", "median", 0.20, revert_after=8),
]


@dataclass(frozen=True)
class Noise:
    """Recorded runs of one benchmark: ``runs`` (samples per run, ms) or ``values`` (a track's)."""

    benchmark: str
    runs: tuple = ()  # one entry per process, the rounds of each recorded run in turn
    values: tuple = ()
    n_runs: int = 1  # recorded asv runs

    @property
    def has_samples(self):
        return bool(self.runs)

    @property
    def rounds(self):
        """Processes (asv rounds) a recorded run had, one replayed commit measures as many."""
        return max(1, len(self.runs) // self.n_runs)


def load_noise(path):
    """``(meta, [Noise])`` from a recorded-noise file."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    noises = [
        Noise(
            name,
            tuple(tuple(run) for run in entry.get("runs", ())),
            tuple(entry.get("values", ())),
            data["meta"].get("runs", 1),
        )
        for name, entry in sorted(data["benchmarks"].items())
    ]
    return data["meta"], noises


def write_noise(results_dir, path, benchmarks=RECORDED):
    """Trim the asv results files in ``results_dir`` (run-K.json, each one run of one commit,
    beside asv's benchmarks.json) to the samples of ``benchmarks`` in 4 significant digits,
    one entry per process (asv round), into ``path``. Returns the number of runs read."""
    files = sorted(f for f in os.listdir(results_dir) if f.startswith("run-") and f.endswith(".json"))
    entries, machines, commits = {}, set(), set()
    for name in files:
        for m in _read_run(results_dir, name):
            if m.benchmark not in benchmarks:
                continue
            machines.add(m.machine)
            commits.add(m.commit)
            entry = entries.setdefault(m.benchmark, {})
            if m.samples:
                for part in m.sample_rounds:
                    entry.setdefault("runs", []).append([float(f"{v:.4g}") for v in part])
            else:
                entry.setdefault("values", []).append(float(f"{m.value:.4g}"))
    meta = {"machine": ", ".join(sorted(machines)), "commit": ", ".join(sorted(commits)), "runs": len(files)}
    write_text_atomically(path, json.dumps({"meta": meta, "benchmarks": entries}))
    return len(files)


def _read_run(results_dir, name):
    """The measurements of the run file ``name`` (read as asv's results of one machine, in a
    temporary folder that is removed however reading ends)."""
    path = os.path.join(results_dir, name)
    with tempfile.TemporaryDirectory(prefix="kvcache-noise-") as folder:
        copy = os.path.join(folder, "m", "run.json")
        os.makedirs(os.path.dirname(copy))
        shutil.copy(path, copy)
        if os.path.exists(os.path.join(results_dir, "benchmarks.json")):
            shutil.copy(os.path.join(results_dir, "benchmarks.json"), folder)
        try:
            return read_measurements(folder, lambda line: print(line.replace(copy, path)))  # warnings name the run file
        except UserError:
            raise UserError(f"no readable asv results in {path} (the line above says why): record it again or remove it") from None


def tail_delta(noise, rise):
    """The ms to add to 1 call in 10 so that the pooled recorded p95 rises by ``rise``."""
    pooled = np.concatenate([np.asarray(run) for run in noise.runs])
    slow = np.arange(pooled.size) % 10 == 0
    target = (1 + rise) * np.quantile(pooled, 0.95)
    low, high = 0.0, 10 * target
    for _ in range(50):
        mid = (low + high) / 2
        if np.quantile(np.where(slow, pooled + mid, pooled), 0.95) < target:
            low = mid
        else:
            high = mid
    return high


class Replayer:
    """Draws commit measurements of one benchmark under one scenario."""

    def __init__(self, noise, scenario):
        self.noise, self.scenario = noise, scenario
        self.delta = tail_delta(noise, scenario.size) if noise.has_samples and scenario.kind == "tail" else 0.0

    def factor(self, index, again=False):
        """Every call's slowdown at commit ``index`` (median steps, creep, and a slow or fast
        first measurement: measured ``again``, such a commit is measured as it is)."""
        s, offset = self.scenario, index - START
        factor = SLOW_MEASURED if offset in s.slow_commits and not again else 1.0
        stepped = offset >= 0 and (s.revert_after is None or offset < s.revert_after)
        stepped = stepped and not (offset in s.fast_commits and not again)
        if s.kind == "median" and stepped:
            factor *= 1 + s.size
        if s.kind == "creep" and offset >= 0:
            factor *= 1 + s.size * min(offset + 1, CREEP_COMMITS)
        return factor

    def measure(self, index, rng, again=False):
        """One measurement of commit ``index``: its rounds, each a tuple of samples (ms); a
        track value is one round of one value."""
        factor = self.factor(index, again)
        tail = self.scenario.kind == "tail" and index >= START
        if not self.noise.has_samples:  # a track value: one number per commit (asv's setup_cache)
            value = float(rng.choice(self.noise.values))
            return ((value * factor * ((1 + self.scenario.size) if tail else 1.0),),)
        rounds = []
        for run in rng.integers(len(self.noise.runs), size=self.noise.rounds):
            samples = np.asarray(self.noise.runs[run]) * factor
            if tail:
                samples = samples + self.delta * (rng.random(samples.size) < 0.1)
            rounds.append(tuple(samples))
        return tuple(rounds)

    def series(self, rng, length=LENGTH):
        return [self.measure(i, rng) for i in range(length)]
