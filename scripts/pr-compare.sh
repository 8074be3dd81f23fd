#!/usr/bin/env bash
# Compare two commits on this machine, for a pull request: `scripts/pr-compare.sh BASE HEAD`.
# asv run measures both, their rounds interleaved (raw samples kept; what `asv continuous`
# does, without its exit 1 for "slower", which asv also gives for its own errors), asv compare
# tabulates the medians, and `kvcache-tracker gate` decides on p95: its exit status is this
# script's. The gate widens its judgement by main's history on this machine where the results
# directory holds it (the PR workflow restores it from the results branch first).
#
# Args: BASE, HEAD   commits (hash, branch or tag) of this repository
# Env:  ASV_MACHINE  asv machine name the results are filed under (default: the host name)
#       ASV_CONFIG   asv config file in the repository root (default asv.conf.json)
#       GATE_MIN_RISE_MS  p95 rise in ms below which the gate never fails (default 0): a
#                    noise floor for shared machines, where p95 moves by ms between runs
# Out:  out/asv-compare.md  asv compare BASE HEAD (median per benchmark, markdown table)
#       out/gate.md         kvcache-tracker gate's p95 table
#       out/pr-comment.md   the PR comment: the gate's verdict and flagged rows first (all its rows
#                           folded), then asv's table folded
#       .asv/results/MACHINE/  BASE's and HEAD's results (asv replaces earlier ones of these two)
# Exit: kvcache-tracker gate's: 0 no p95 regression, 1 a regression, 2 bad input or missing
#       results; 3 asv run failed (its own error: nothing was compared); another status: the
#       step that failed (its message says which).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
job=pr-compare

[ $# -eq 2 ] || { echo "usage: scripts/pr-compare.sh BASE HEAD" >&2; exit 2; }
for rev in "$1" "$2"; do
  git rev-parse -q --verify "$rev^{commit}" >/dev/null ||
    { echo "$job: '$rev' is not a commit of this repository (fetch it first?)" >&2; exit 2; }
done
base=$(git rev-parse "$1^{commit}")
head=$(git rev-parse "$2^{commit}")

echo "== $job [1/4] virtualenv .venv (bench extra) and asv machine ($(date -u +%H:%M:%S))"
source scripts/asv-common.sh
echo "machine: $machine; BASE ${base:0:12}, HEAD ${head:0:12}"
mkdir -p out

echo "== $job [2/4] asv run: measure BASE and HEAD, rounds interleaved ($(date -u +%H:%M:%S))"
run_status=0
printf '%s\n%s\n' "$base" "$head" |
  "$bin/asv" run --record-samples --interleave-rounds --machine "$machine" ${config_opts[@]+"${config_opts[@]}"} HASHFILE:- ||
  run_status=$?
case $run_status in
  0) ;;
  2) echo "$job: some benchmarks FAILED (asv exit 2; see '· failed' above); comparing what was measured" ;;
  *) echo "$job: asv run exited $run_status (its error is above): nothing to compare" >&2; exit 3 ;;
esac

echo "== $job [3/4] asv compare BASE HEAD -> out/asv-compare.md ($(date -u +%H:%M:%S))"
"$bin/asv" compare --machine "$machine" ${config_opts[@]+"${config_opts[@]}"} "$base" "$head" >out/asv-compare.md
cat out/asv-compare.md

echo "== $job [4/4] kvcache-tracker gate BASE HEAD -> out/gate.md, out/pr-comment.md ($(date -u +%H:%M:%S))"
gate_status=0
"$bin/kvcache-tracker" gate --machine "$machine" --min-rise-ms "${GATE_MIN_RISE_MS:-0}" ${config_opts[@]+"${config_opts[@]}"} "$base" "$head" >out/gate.md || gate_status=$?
cat out/gate.md
{  # the verdict first: the gate's own lines open with it and the flagged rows
  if [ -s out/gate.md ]; then
    cat out/gate.md
  else
    echo "### kvcache-tracker gate: no verdict (it exited $gate_status; the run's log says why)"
    echo
    echo "HEAD \`${head:0:8}\` vs BASE \`${base:0:8}\` on machine \`$machine\`."
  fi
  echo
  echo "<details><summary>asv compare (medians; asv's own factor 1.1)</summary>"
  echo
  cat out/asv-compare.md
  echo
  echo "</details>"
} >out/pr-comment.md
echo "== $job done ($(date -u +%H:%M:%S)): gate exit $gate_status; comment in out/pr-comment.md"
exit "$gate_status"
