"""Run ``kvcache-bench gate BASE HEAD --machine M`` over every pair of neighbouring commits.

    python tools/public_asv/gate_pairs.py PROJECT_DIR [--last N] [--subprocess]

In ``PROJECT_DIR`` (a folder ``layout.py`` made: asv.conf.json, results/), for each machine,
takes the commits of the branch's first-parent history (``git rev-list --first-parent``) that
have results on that machine, oldest first, and gates each commit against the one before it.
Commits whose every result failed (a results file of nulls) are left out, and counted.
Writes ``PROJECT_DIR/gates.jsonl``, one line per pair: machine, base, head, the exit code, the
rows the gate flagged (read from its markdown table by the column names), and its warnings;
and one line per machine with how many commits were left out (``all_failed_commits``).

By default the gate runs in this process (``kvbench.cli.main``), with the results read once
and reused by every call (reading is the gate's slow part and gives the same answer each
time); ``--subprocess`` runs the ``kvcache-bench`` command itself for each pair instead.
``--last N`` gates only the newest N pairs of each machine.
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
    """One gate call through ``kvbench.cli.main``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["gate", base, head, "--machine", machine])
    return rc, out.getvalue(), err.getvalue()


def gate_subprocess(base, head, machine):
    done = subprocess.run(
        ["kvcache-bench", "gate", base, head, "--machine", machine], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout, done.stderr


def reuse_reads():
    """Make the gate read the results once: ``read_measurements`` answers from a cache keyed by
    the results directory. Returns ``kvbench.cli`` (None when the gate module has no
    ``read_measurements`` to wrap; the gate then reads on every call)."""
    from kvbench import cli
    from kvbench.tracker import gate

    original = getattr(gate, "read_measurements", None)
    if original is not None:
        cache = {}

        def cached(results_dir, warn):
            if results_dir not in cache:
                cache[results_dir] = original(results_dir, warn)
            return cache[results_dir]

        gate.read_measurements = cached
    return cli


def run_pairs(project_dir, last, use_subprocess, write_line):
    """Gate every neighbouring pair of every machine; each result is one JSON line."""
    order = branch_order(project_dir)
    cli = None if use_subprocess else reuse_reads()
    totals = {}
    measured, failed = machine_commits(project_dir)
    for machine, commits in sorted(failed.items()):
        write_line(json.dumps({"machine": machine, "all_failed_commits": len(commits)}))
    for machine, commits in sorted(measured.items()):
        pairs = neighbour_pairs(order, commits)
        pairs = pairs[-last:] if last else pairs
        started = time.monotonic()
        for base, head in pairs:
            rc, out, err = gate_subprocess(base, head, machine) if cli is None else gate_in_process(cli, base, head, machine)
            write_line(json.dumps({
                "machine": machine, "base": base, "head": head, "rc": rc,
                "regressions": parse_flagged_rows(out),
                "stderr": [line for line in err.splitlines() if line.strip()],
            }))
        totals[machine] = (len(pairs), time.monotonic() - started)
    return totals


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project_dir")
    parser.add_argument("--last", type=int, default=0, help="only the newest N pairs of each machine")
    parser.add_argument("--subprocess", action="store_true", help="run the kvcache-bench command per pair")
    args = parser.parse_args(argv)
    project_dir = os.path.abspath(args.project_dir)
    os.chdir(project_dir)  # the gate reads ./asv.conf.json, as a CI job run from the project would
    with open(os.path.join(project_dir, "gates.jsonl"), "w", encoding="utf-8") as out:
        totals = run_pairs(project_dir, args.last, args.subprocess, lambda line: out.write(line + "\n"))
    for machine, (n, seconds) in totals.items():
        print(f"gate_pairs: {machine}: {n} pairs in {seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
