#!/usr/bin/env bash
# The main job (`make main-job`): measure the last N commits of main with asv (raw samples
# kept, the commits' rounds interleaved), publish asv's dashboard, find kvcache-tracker's p95
# flags, re-measure each new flag against the last commit at the old level and keep it only
# if the re-measurement agrees, and print the flags. Works from a fresh clone (it makes .venv
# with the bench extra); safe to rerun: measured commits are skipped, decided flags not
# re-measured.
#
# Env:  N            how many commits of main to measure, newest first, following main's
#                    first parents (default 2: 10 minutes on the shared 2-core VM from a fresh
#                    clone, installs included, ~4.5 minutes more per commit; docs/benchmarks.md)
#       ASV_MACHINE  asv machine name the results are filed under (default: the host name)
#       ASV_CONFIG   asv config file in the repository root (default asv.conf.json)
# Out:  .asv/results/MACHINE/COMMIT-ENV.json  asv results with raw samples; only ever added:
#                    never deleted or rewritten (--skip-existing-commits); one that is not
#                    JSON (a killed write) is kept as COMMIT-ENV.json.unreadable-TIME, measured again
#       .asv/html    asv's dashboard with the p95 page, loading nothing from other hosts
#                    (kvcache-tracker vendor-html: needs npm; browse: .venv/bin/asv preview)
#       .asv/p95.json  p95 series per benchmark, regressions and budget overruns
#       .asv/results/confirmations.json  each re-measured flag's verdict (stands / dismissed), beside
#                    the results (kvcache-tracker's default), so that scripts/results-branch.sh keeps it
#                    with them across CI jobs: a decided flag is never re-measured; only added to
# Exit: 0 done; 1 a benchmark failed at some commit (the other results are kept and published);
#       2 bad input; 3 asv run itself failed (nothing published); 5 the dashboard could not be
#       served offline (no npm: the flags are printed all the same); another status: the step
#       that failed (its message says which).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
job=main-job

N=${N:-2}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "$job: N (commits to measure) must be a positive integer, got '$N'" >&2; exit 2; }
git rev-parse -q --verify refs/heads/main >/dev/null ||
  { echo "$job: no local branch main: asv benchmarks main's history (git branch main origin/main)" >&2; exit 2; }

echo "== $job [1/5] virtualenv .venv (bench extra) and asv machine ($(date -u +%H:%M:%S))"
source scripts/asv-common.sh
echo "machine: $machine"
# asv writes a results file in place: a run killed meanwhile leaves it truncated, and each later
# `asv run` stops at that commit (exit 1). Such a file is kept as FILE.unreadable-TIME (asv and
# kvcache-tracker read only *.json), so that its commit is measured again. asv interleaves the
# rounds across the commits: a run killed midway also leaves commits with only some rounds.
# .asv/main-job.running lists the commits a run set out to measure; if it is still there, that
# run was killed, and their files are kept as FILE.interrupted-TIME, to be measured again.
running=.asv/main-job.running
"$bin/python" - "$job" ".asv/results/$machine" "$running" <<'PY'
import json, os, sys, time
job, folder, running = sys.argv[1:]
interrupted = set()
if os.path.exists(running):
    with open(running, encoding="utf-8") as f:
        interrupted = {line.strip()[:8] for line in f if line.strip()}
for entry in sorted(os.scandir(folder), key=lambda e: e.name) if os.path.isdir(folder) else []:
    if entry.name.endswith(".json") and entry.is_file() and entry.name != "machine.json":
        if entry.name[:8] in interrupted:
            kept = f"{entry.path}.interrupted-{time.time_ns()}"
            os.rename(entry.path, kept)
            print(f"{job}: {entry.path} is from a run killed midway (some rounds may be missing): kept as {kept}; its commit is measured again")
            continue
        try:
            with open(entry.path, encoding="utf-8") as f:
                json.load(f)
        except ValueError:  # truncated, empty or not text
            kept = f"{entry.path}.unreadable-{time.time_ns()}"
            os.rename(entry.path, kept)
            print(f"{job}: {entry.path} is not JSON (a run killed while asv wrote it?): kept as {kept}; its commit is measured again")
PY
# What to measure is decided here, before asv: the commits without a results file on this
# machine. asv's exit 1 means many things (no commit selected, no environment, no benchmark
# selected, a suite that does not import, a bad HASHFILE): with nothing left to measure asv is
# not called, so any exit of asv other than 0 and 2 is an error.
mkdir -p .asv
for commit in $(git rev-list --first-parent -n "$N" main); do
  ls ".asv/results/$machine/${commit:0:8}"-*.json >/dev/null 2>&1 || echo "$commit"
done >"$running"

run_status=0
if [ -s "$running" ]; then
  echo "== $job [2/5] asv run: $(wc -l <"$running" | tr -d ' ') of the last $N commits of main not yet measured on $machine ($(date -u +%H:%M:%S))"
  "$bin/asv" run --record-samples --interleave-rounds --skip-existing-commits --machine "$machine" ${config_opts[@]+"${config_opts[@]}"} HASHFILE:- <"$running" ||
    run_status=$?
else
  echo "== $job [2/5] asv run: nothing to measure, the last $N commits of main all have results on $machine ($(date -u +%H:%M:%S))"
fi
rm -f "$running"  # asv ended (whatever its status): no commit was left half-measured
case $run_status in
  0) ;;
  2) echo "$job: some benchmarks FAILED (asv exit 2; see '· failed' above); their results are recorded as missing" ;;
  *) echo "$job: asv run exited $run_status (its error is above, e.g. a benchmark suite that does not import); nothing was published" >&2
     exit 3 ;;
esac

# Each publish sets publish_status afresh: the job's exit reflects the last one.
publish() {
  publish_status=0
  job=$job bash scripts/publish.sh || publish_status=$?
  case $publish_status in 0|5) ;; *) exit "$publish_status" ;; esac
}
echo "== $job [3/5] publish: asv's dashboard (its CDN files served from it), the p95 page and flags ($(date -u +%H:%M:%S))"
publish

echo "== $job [4/5] re-measure each new flag: the last commit at the old level and its candidates, rounds interleaved ($(date -u +%H:%M:%S))"
# The verdicts: kvcache-tracker's default, RESULTS_DIR/confirmations.json. One plan line per flag:
# the benchmark's regex, then the last commit at the old level (P) and every candidate.
"$bin/kvcache-tracker" confirm --plan .asv/confirm-plan.json --flags .asv/p95.json \
  ${config_opts[@]+"${config_opts[@]}"} >.asv/confirm-runs.txt
if [ -s .asv/confirm-runs.txt ]; then
  line_re='^(.+) ([0-9a-f]{40})$'  # the regex may hold spaces (re.escape writes "\ "): peel hashes off the end
  while IFS= read -r selection; do
    commits=
    while [[ $selection =~ $line_re ]]; do
      commits="${BASH_REMATCH[2]} $commits"
      selection=${BASH_REMATCH[1]}
    done
    [ -n "$commits" ] || { echo "$job: kvcache-tracker confirm --plan printed '$selection', not 'REGEX P C1 ..': a bug" >&2; exit 6; }
    echo "re-measuring $selection at $(for c in $commits; do printf '%s ' "${c:0:8}"; done)"
    remeasure_status=0
    # shellcheck disable=SC2086  # $commits: hashes, one word each
    printf '%s\n' $commits |
      "$bin/asv" run --append-samples --interleave-rounds --machine "$machine" \
        ${config_opts[@]+"${config_opts[@]}"} -b "$selection" HASHFILE:- ||
      remeasure_status=$?
    [ "$remeasure_status" -eq 0 ] ||
      echo "$job: asv run exited $remeasure_status while re-measuring $selection (its error is above): its flag stays undecided"
  done <.asv/confirm-runs.txt
  "$bin/kvcache-tracker" confirm --decide .asv/confirm-plan.json ${config_opts[@]+"${config_opts[@]}"}
  publish  # again: the verdicts, and the samples added
else
  echo "no new flag to re-measure"
fi
echo "== $job [5/5] the p95 flags ($(date -u +%H:%M:%S))"
cat .asv/p95.txt

echo "== $job done ($(date -u +%H:%M:%S)). Browse the dashboard: $bin/asv preview (serves .asv/html; Ctrl-C stops it)"
[ "$run_status" -ne 2 ] || exit 1
[ "$publish_status" -ne 5 ] || exit 5  # the flags are above; the dashboard still loads from CDNs
