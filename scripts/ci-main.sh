#!/usr/bin/env bash
# The benchmark step of .github/workflows/benchmarks-main.yml (self-hosted Apple Silicon runner),
# runnable as is on any machine: an optional backfill of a range of history, then
# scripts/main-job.sh (asv over the recent commits not yet measured, asv publish, kvcache-bench p95).
#
# Env: ASV_MACHINE (required: the fixed asv machine name the results are filed under),
#      BACKFILL_RANGE (optional: a git range for asv, e.g. v0.1..main; commits already measured
#      on this machine are skipped), N (optional: how many recent commits main-job.sh measures),
#      ASV_CONFIG (optional, as scripts/asv-common.sh takes it).
# Exit status: main-job.sh's, or 2 for bad input or a benchmark that failed during the backfill.
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
  # ${a[@]+"${a[@]}"}: macOS's bash 3.2 calls an empty array unbound under set -u.
  "$bin/asv" run --record-samples --skip-existing-commits --machine "$machine" ${config_opts[@]+"${config_opts[@]}"} "$BACKFILL_RANGE" ||
    backfill_status=$?
  case $backfill_status in
    0) ;;
    1) echo "ci-main: asv selected no commit in $BACKFILL_RANGE to measure (all measured already?)"; backfill_status=0 ;;
    *) echo "::error title=backfill::asv run $BACKFILL_RANGE exited $backfill_status (a benchmark failed); continuing with the main job" ;;
  esac
fi

echo "== ci-main: main job (machine $ASV_MACHINE, N=${N:-default})"
bash scripts/main-job.sh
[ "$backfill_status" -eq 0 ] || exit 2
