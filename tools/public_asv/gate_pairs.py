"""Run ``kvcache-tracker gate BASE HEAD --machine M`` over every pair of neighbouring commits.

    python tools/public_asv/gate_pairs.py PROJECT_DIR [--last N] [--subprocess]

In ``PROJECT_DIR`` (a folder ``layout.py`` made: asv.conf.json, results/), for each machine,
takes the commits of the branch's first-parent history (``git rev-list --first-parent``) that
have results on that machine, oldest first, and gates each commit against the one before it.
Commits whose every result failed (a results file of nulls) are left out, and counted.
Writes ``PROJECT_DIR/gates.jsonl``, one line per pair: machine, base, head, the exit code, the
rows the gate flagged (read from its markdown table by the column names), and its warnings;
and one line per machine with how many commits were left out (``all_failed_commits``).

By default the gate runs in this process (``kvtracker.cli.main``), with the results read once
and the history's noise computed once per machine, both reused by every call (they are the
gate's slow parts on a large history and give the same answer each time: ``reuse_reads``);
``--subprocess`` runs the ``kvcache-tracker`` command itself for each pair instead.
``--last N`` gates only the newest N pairs of each machine; ``--resume`` keeps the pairs an
earlier, interrupted run wrote and gates the rest; ``--lock FILE`` takes the shared measurement
lock in turns of a minute, so that a long run does not hold up the measurements queued on it.
"""

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time


def machine_commits(project_dir):
    """``({machine: commits measured there}, {machine: commits whose every result failed})``:
    a commit is measured on a machine when a results file there holds at least one value
    (asv writes a file, of nulls, when every benchmark failed or was skipped)."""
    results_dir = os.path.join(project_dir, "results")
    found, failed = {}, {}
    for machine in sorted(os.listdir(results_dir)):
        folder = os.path.join(results_dir, machine)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.endswith(".json") and name != "machine.json":
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    d = json.load(f)
                measured = any(isinstance(row, list) and row and row[0] is not None for row in d.get("results", {}).values())
                (found if measured else failed).setdefault(d["params"]["machine"], set()).add(d["commit_hash"])
    return found, {m: commits - found.get(m, set()) for m, commits in failed.items()}


def branch_order(project_dir):
    """The branch's first-parent history, oldest first, from asv.conf.json's repo and branch."""
    with open(os.path.join(project_dir, "asv.conf.json"), encoding="utf-8") as f:
        conf = json.load(f)
    out = subprocess.run(
        ["git", "--git-dir", conf["repo"], "rev-list", "--first-parent", "--reverse", conf["branches"][0], "--"],
        capture_output=True, text=True, check=True,
    ).stdout
    return out.split()


def neighbour_pairs(order, commits):
    """``[(base, head)]``: each commit of ``order`` in ``commits`` with the one before it."""
    on_branch = [c for c in order if c in commits]
    return list(zip(on_branch, on_branch[1:]))


def parse_flagged_rows(markdown):
    """The rows of the gate's first table whose verdict is a regression, as dicts keyed by the
    table's own column names (benchmark names without their backticks)."""
    rows, headers = [], None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            if headers is not None:
                break  # the first table ended
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if headers is None:
            headers = cells
        elif not set(line) <= set("|-: "):
            row = dict(zip(headers, cells))
            row["benchmark"] = row.get("benchmark", "").strip("`")
            if "regression" in row.get("verdict", ""):
                rows.append(row)
    return rows


def gate_in_process(cli, base, head, machine):
    """One gate call through ``kvtracker.cli.main``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["gate", base, head, "--machine", machine])
    return rc, out.getvalue(), err.getvalue()


def gate_subprocess(base, head, machine):
    done = subprocess.run(
        ["kvcache-tracker", "gate", base, head, "--machine", machine], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout, done.stderr


def reuse_reads():
    """Make the gate read the results once: ``read_measurements`` answers from a cache keyed by
    the results directory, and ``_history_bounds`` (each benchmark's run-to-run spread along
    the branch on the machine: the same for every pair of a machine, and most of a call's
    time on a large history) from a cache keyed by the machine. Both give what they would
    compute, as the results and the branch do not change during the run. Returns
    ``kvtracker.cli``; a function the gate module no longer has is left alone (the gate then
    computes it on every call)."""
    from kvtracker import cli
    from kvtracker import gate

    original_read = getattr(gate, "read_measurements", None)
    if original_read is not None:
        reads = {}

        def cached_read(results_dir, warn):
            if results_dir not in reads:
                reads[results_dir] = original_read(results_dir, warn)
            return reads[results_dir]

        gate.read_measurements = cached_read
    original_bounds = getattr(gate, "_history_bounds", None)
    if original_bounds is not None:
        bounds = {}

        def cached_bounds(proj, measurements, machine):
            key = (id(measurements), machine)
            if key not in bounds:
                bounds[key] = original_bounds(proj, measurements, machine)
            return bounds[key]

        gate._history_bounds = cached_bounds
    return cli


class TurnLock:
    """The shared measurement lock, taken in turns: held for at most ``turn_s`` seconds of
    gating, then let go so that queued measurements run between turns. No lock file: a no-op."""

    def __init__(self, path, turn_s=60.0):
        self.path, self.turn_s, self.file, self.since = path, turn_s, None, 0.0
        self.active_s = self.waited_s = 0.0

    def hold(self):
        """Called before each pair: take the lock, or let it go and take it again when the turn is up."""
        if self.path is None:
            return
        now = time.monotonic()
        if self.file is not None and now - self.since < self.turn_s:
            return
        self.release()
        import fcntl

        asked = time.monotonic()
        self.file = open(self.path, "a", encoding="utf-8")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        self.since = time.monotonic()
        self.waited_s += self.since - asked

    def release(self):
        if self.file is not None:
            self.active_s += time.monotonic() - self.since
            self.file.close()  # closing lets the flock go
            self.file = None


def done_pairs(path):
    """The lines of an earlier ``gates.jsonl`` and the (machine, base, head) pairs they gated."""
    if not os.path.exists(path):
        return [], set()
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    pairs = set()
    for line in lines:
        d = json.loads(line)
        if "rc" in d:
            pairs.add((d["machine"], d["base"], d["head"]))
    return lines, pairs


def run_pairs(project_dir, last, use_subprocess, write_line, skip=frozenset(), lock=None):
    """Gate every neighbouring pair of every machine (but those in ``skip``); each result is
    one JSON line. Returns ``{machine: (pairs gated, seconds)}``."""
    order = branch_order(project_dir)
    cli = None if use_subprocess else reuse_reads()
    lock = lock or TurnLock(None)
    totals = {}
    measured, failed = machine_commits(project_dir)
    if not skip:
        for machine, commits in sorted(failed.items()):
            write_line(json.dumps({"machine": machine, "all_failed_commits": len(commits)}))
    for machine, commits in sorted(measured.items()):
        pairs = neighbour_pairs(order, commits)
        pairs = [p for p in (pairs[-last:] if last else pairs) if (machine, *p) not in skip]
        started = time.monotonic()
        for base, head in pairs:
            lock.hold()
            rc, out, err = gate_subprocess(base, head, machine) if cli is None else gate_in_process(cli, base, head, machine)
            write_line(json.dumps({
                "machine": machine, "base": base, "head": head, "rc": rc,
                "regressions": parse_flagged_rows(out),
                "stderr": [line for line in err.splitlines() if line.strip()],
            }))
        totals[machine] = (len(pairs), time.monotonic() - started)
    lock.release()
    return totals


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project_dir")
    parser.add_argument("--last", type=int, default=0, help="only the newest N pairs of each machine")
    parser.add_argument("--subprocess", action="store_true", help="run the kvcache-tracker command per pair")
    parser.add_argument("--resume", action="store_true", help="keep gates.jsonl and gate only the pairs it lacks")
    parser.add_argument("--lock", help="take this lock file in turns of a minute (the shared measurement lock)")
    args = parser.parse_args(argv)
    project_dir = os.path.abspath(args.project_dir)
    os.chdir(project_dir)  # the gate reads ./asv.conf.json, as a CI job run from the project would
    path = os.path.join(project_dir, "gates.jsonl")
    kept, skip = done_pairs(path) if args.resume else ([], set())
    lock = TurnLock(args.lock)
    with open(path, "w", encoding="utf-8") as out:
        for line in kept:
            out.write(line + "\n")
        out.flush()

        def write_line(line):
            out.write(line + "\n")
            out.flush()

        totals = run_pairs(project_dir, args.last, args.subprocess, write_line, frozenset(skip), lock)
    for machine, (n, seconds) in totals.items():
        print(f"gate_pairs: {machine}: {n} pairs in {seconds:.0f} s", file=sys.stderr)
    if args.lock:
        print(f"gate_pairs: {lock.active_s:.0f} s gating under the lock, {lock.waited_s:.0f} s waiting for it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
