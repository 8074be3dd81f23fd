"""How long ``kvcache-bench p95`` takes over a long history: COMMITS commits x BENCHMARKS
benchmarks, each result with SAMPLES raw samples, written by asv's own ``Results`` class into a
temporary git repository (docs/tracker.md, "Scale").

    .venv/bin/python scripts/tracker-scale.py [--commits 1000] [--benchmarks 20] [--samples 200]

Prints the seconds of each run of the command (--json, and with the HTML page), each the
best of --repeat runs.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from asv.results import Results
from asv.runner import BenchmarkResult


def make_project(root, commits, benchmarks, samples):
    subprocess.run(["git", "init", "-q", "-b", "main", root], check=True)
    stream = []
    for i in range(commits):  # git fast-import chains them: a thousand commits in a blink
        message = f"c{i}"
        stream.append(f"commit refs/heads/main\ncommitter t <t@t> {1_700_000_000 + i} +0000\ndata {len(message)}\n{message}\n")
    subprocess.run(["git", "-C", root, "fast-import", "--quiet"], input="".join(stream).encode(), check=True)
    hashes = subprocess.run(
        ["git", "-C", root, "rev-list", "--reverse", "main"], check=True, capture_output=True, text=True
    ).stdout.split()
    with open(os.path.join(root, "asv.conf.json"), "w") as f:
        f.write('{"version": 1, "repo": ".", "branches": ["main"], "results_dir": "results", "html_dir": "html"}')
    rng = np.random.default_rng(0)
    for i, commit in enumerate(hashes):
        results = Results({"machine": "box", "python": "3.11"}, {}, commit, 1_700_000_000_000 + i, "3.11", "env", {})
        for b in range(benchmarks):
            seconds = list(0.001 * (1 + rng.exponential(0.1, samples)) * (1.3 if i >= commits // 2 and b == 0 else 1))
            outcome = BenchmarkResult(
                result=[float(np.median(seconds))], samples=[seconds], number=[1], errcode=0, stderr="", profile=None
            )
            results.add_result({"name": f"bench_s.S.time_b{b}", "version": "1", "params": []}, outcome, record_samples=True)
        results.save(os.path.join(root, "results"))


def timed(args, cwd, repeat):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kvbench.cli", *args], cwd=cwd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--benchmarks", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        make_project(root, args.commits, args.benchmarks, args.samples)
        print(f"{args.commits} commits x {args.benchmarks} benchmarks x {args.samples} samples written in {time.perf_counter() - start:.0f} s")
        env_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        os.environ["PYTHONPATH"] = env_root
        print(f"p95 --json: {timed(['p95', '--json', os.path.join(root, 'p95.json'), '--no-html'], root, args.repeat):.1f} s (best of {args.repeat})")
        print(f"p95 --json --html: {timed(['p95', '--json', os.path.join(root, 'p95.json')], root, args.repeat):.1f} s (best of {args.repeat})")


if __name__ == "__main__":
    main()
