#!/usr/bin/env bash
# The benchmark step of .github/workflows/benchmarks-main.yml (self-hosted Apple Silicon runner),
# runnable as is on any machine: an optional backfill of a range of history, then
# scripts/main-job.sh (asv over the recent commits not yet measured, asv publish, kvcache-tracker p95).
#
# Env: ASV_MACHINE (required: the fixed asv machine name the results are filed under),
#      BACKFILL_RANGE (optional: a git range for asv, e.g. v0.1..main; commits already measured
#      on this machine are skipped), N (optional: how many recent commits main-job.sh measures),
#      ASV_CONFIG (optional, as scripts/asv-common.sh takes it).
# Exit status: main-job.sh's, or 2 for bad input or a backfill whose asv run failed (asv's own
# error, or a benchmark that failed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() { echo "ci-main: $*" >&2; exit 2; }

[ -n "${ASV_MACHINE:-}" ] || die "set ASV_MACHINE to the asv machine name of this runner (e.g. mac-arm64-1)"
[[ $ASV_MACHINE =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "ASV_MACHINE '$ASV_MACHINE' may hold only letters, digits, '.', '_' and '-'"
if [ -n "${N:-}" ]; then
  [[ $N =~ ^[1-9][0-9]*$ ]] || die "N (commits to measure) must be a positive integer, got '$N'"
  export N
fi

backfill_status=0
if [ -n "${BACKFILL_RANGE:-}" ]; then
  ref='[A-Za-z0-9_][A-Za-z0-9._/^~!-]*'
  range_re="^$ref(\\.\\.$ref)?\$"
  [[ $BACKFILL_RANGE =~ $range_re ]] ||
    die "BACKFILL_RANGE '$BACKFILL_RANGE' is not a git range like v0.1..main, a1b2c3d..main or a1b2c3d^! (one commit)"
  echo "== ci-main: backfill $BACKFILL_RANGE on machine $ASV_MACHINE"
  job=ci-main
  source scripts/asv-common.sh  # sets bin, machine, config_opts (as main-job.sh uses them)
  # The commits of the range as asv selects them (git rev-list --first-parent RANGE) that have
  # no results file on this machine, decided here: asv's exit 1 means many things (no commit
  # selected, no environment, no benchmark selected, a suite that does not import), so with
  # nothing to measure asv is not called, and any other exit than 0 is what it says.
  in_range=$(mktemp) todo=$(mktemp)
  trap 'rm -f "$in_range" "$todo"' EXIT
  git rev-list --first-parent "$BACKFILL_RANGE" -- >"$in_range" ||
    die "git rev-list $BACKFILL_RANGE failed (its message is above): not a range of this repository"
  while read -r commit; do
    ls ".asv/results/$machine/${commit:0:8}"-*.json >/dev/null 2>&1 || echo "$commit"
  done <"$in_range" >"$todo"
  if [ ! -s "$todo" ]; then
    echo "ci-main: every commit of $BACKFILL_RANGE has results on $machine already: nothing to backfill"
  else
    echo "ci-main: $(wc -l <"$todo" | tr -d ' ') commits of $BACKFILL_RANGE to measure"
    # ${a[@]+"${a[@]}"}: macOS's bash 3.2 calls an empty array unbound under set -u.
    "$bin/asv" run --record-samples --skip-existing-commits --machine "$machine" ${config_opts[@]+"${config_opts[@]}"} HASHFILE:- <"$todo" ||
      backfill_status=$?
  fi
  case $backfill_status in
    0) ;;
    2) echo "::error title=backfill::asv run of $BACKFILL_RANGE exited 2 (a benchmark failed; see '· failed' above); continuing with the main job" ;;
    *) echo "::error title=backfill::asv run of $BACKFILL_RANGE exited $backfill_status (its error is above); continuing with the main job" ;;
  esac
fi

echo "== ci-main: main job (machine $ASV_MACHINE, N=${N:-default})"
bash scripts/main-job.sh
[ "$backfill_status" -eq 0 ] || exit 2
