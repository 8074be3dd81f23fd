#!/usr/bin/env bash
# The main job (`make main-job`): measure the last N commits of main with asv (raw samples
# kept), publish asv's dashboard, and print kvcache-bench's p95 flags. Works from a fresh
# clone (it makes .venv with the bench extra); safe to rerun: measured commits are skipped.
#
# Env:  N            how many commits of main to measure, newest first, following main's
#                    first parents (default 2: 10 minutes on the shared 2-core VM from a fresh
#                    clone, installs included, ~4.5 minutes more per commit; docs/benchmarks.md)
#       ASV_MACHINE  asv machine name the results are filed under (default: the host name)
#       ASV_CONFIG   asv config file in the repository root (default asv.conf.json)
# Out:  .asv/results/MACHINE/COMMIT-ENV.json  asv results with raw samples; only ever added:
#                    never deleted or rewritten (--skip-existing-commits); one that is not
#                    JSON (a killed write) is kept as COMMIT-ENV.json.unreadable-TIME, measured again
#       .asv/html    asv's dashboard with the p95 page (browse: .venv/bin/asv preview)
#       .asv/p95.json  p95 series per benchmark, regressions and budget overruns
# Exit: 0 done; 1 a benchmark failed at some commit (the other results are kept and published);
#       2 bad input; 3 asv run itself failed (nothing published); another status: the step
#       that failed (its message says which).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
job=main-job

N=${N:-2}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "$job: N (commits to measure) must be a positive integer, got '$N'" >&2; exit 2; }
git rev-parse -q --verify refs/heads/main >/dev/null ||
  { echo "$job: no local branch main: asv benchmarks main's history (git branch main origin/main)" >&2; exit 2; }

echo "== $job [1/4] virtualenv .venv (bench extra) and asv machine ($(date -u +%H:%M:%S))"
source scripts/asv-common.sh
echo "machine: $machine"
# asv writes a results file in place: a run killed meanwhile leaves it truncated, and each later
# `asv run` stops at that commit (exit 1). Such a file is kept as FILE.unreadable-TIME (asv and
# kvcache-bench read only *.json), so that its commit is measured again.
"$bin/python" - "$job" ".asv/results/$machine" <<'PY'
import json, os, sys, time
job, folder = sys.argv[1:]
for entry in sorted(os.scandir(folder), key=lambda e: e.name) if os.path.isdir(folder) else []:
    if entry.name.endswith(".json") and entry.is_file():
        try:
            with open(entry.path, encoding="utf-8") as f:
                json.load(f)
        except ValueError:  # truncated, empty or not text
            kept = f"{entry.path}.unreadable-{time.time_ns()}"
            os.rename(entry.path, kept)
            print(f"{job}: {entry.path} is not JSON (a run killed while asv wrote it?): kept as {kept}; its commit is measured again")
PY

echo "== $job [2/4] asv run: the last $N commits of main not yet measured on $machine ($(date -u +%H:%M:%S))"
run_status=0
git rev-list --first-parent -n "$N" main |
  "$bin/asv" run --record-samples --skip-existing-commits --machine "$machine" ${config_opts[@]+"${config_opts[@]}"} HASHFILE:- ||
  run_status=$?
case $run_status in  # commits measured already are skipped with exit 0
  0) ;;
  2) echo "$job: some benchmarks FAILED (asv exit 2; see '· failed' above); their results are recorded as missing" ;;
  *) echo "$job: asv run exited $run_status (its error is above, e.g. a benchmark suite that does not import); nothing was published" >&2
     exit 3 ;;
esac

echo "== $job [3/4] asv publish: dashboard in .asv/html ($(date -u +%H:%M:%S))"
"$bin/asv" publish ${config_opts[@]+"${config_opts[@]}"}

echo "== $job [4/4] kvcache-bench p95: p95 series, regressions and budget overruns ($(date -u +%H:%M:%S))"
"$bin/kvcache-bench" p95 --results .asv/results --html .asv/html --json .asv/p95.json ${config_opts[@]+"${config_opts[@]}"}

echo "== $job done ($(date -u +%H:%M:%S)). Browse the dashboard: $bin/asv preview (serves .asv/html; Ctrl-C stops it)"
[ "$run_status" -ne 2 ] || exit 1
