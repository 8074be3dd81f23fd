#!/usr/bin/env bash
# The tracker on one project's public asv results, in one command:
#
#   tools/public_asv/run.sh PROJECT        (PROJECT: a name in tools/public_asv/projects.json)
#
# 1. layout.py: $PUBLIC_ASV_DATA/PROJECT (default /work/public-data/PROJECT) with the results,
#    an asv.conf.json naming the project's repository and branch (layout.py says where the
#    repositories are read from);
# 2. kvcache-tracker p95 --no-html --json p95.json (stdout and stderr kept: p95.stdout, p95.stderr);
# 3. gate_pairs.py: kvcache-tracker gate BASE HEAD --machine M over every neighbouring pair
#    (GATE_ARGS passes options: GATE_ARGS="--last 200", GATE_ARGS=--subprocess);
# 4. asv publish (asv's own step detection: html/regressions.json);
# 5. summarize.py: summary.json and summary.md.
# RESUME=1 keeps p95's outputs and the pairs an interrupted run gated, and does the rest.
# Steps 2 and 4 hold the shared measurement lock (LOCK, default /tmp/kvcache-measure.lock)
# where flock exists; step 3 takes it in turns of a minute, so that the measurements queued on
# it run between turns. timings.json: each step's seconds, waits for the lock included.
# Uses the project's .venv (scripts/venv.sh test). Runs under macOS's bash 3.2.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tools/public_asv"
die() { echo "public_asv: $*" >&2; exit 2; }

[ $# -eq 1 ] || die "usage: tools/public_asv/run.sh PROJECT (a name in $here/projects.json)"
project=$1
lock=${LOCK:-/tmp/kvcache-measure.lock}
resume=${RESUME:-}
python=$(bash "$root/scripts/venv.sh" test | tail -n 1) || die "scripts/venv.sh test failed (its message is above)"
bin=$(dirname "$python")
export PATH="$bin:$PATH"

locked() {  # the command under the measurement lock, where flock exists
  if command -v flock >/dev/null 2>&1; then flock "$lock" "$@"; else "$@"; fi
}
timings=""
timed() {  # timed NAME COMMAND...: run it, add "NAME": seconds to timings.json; its exit code
  local name=$1 start end rc=0
  shift
  start=$(date +%s)
  "$@" || rc=$?
  end=$(date +%s)
  timings="$timings${timings:+, }\"$name\": $((end - start))"
  return $rc
}

folder=$("$python" "$here/layout.py" "$project") || die "layout.py $project failed (its message is above)"
cd "$folder"
echo "public_asv: $project in $folder (load: $(uptime | sed 's/.*load average[s]*: //'))" >&2
gate_args="--lock $lock"
if [ -n "$resume" ] && [ -s p95.json ]; then
  gate_args="$gate_args --resume"
else
  rm -f p95.json p95.stdout p95.stderr gates.jsonl
  p95_rc=0
  timed p95 locked kvcache-tracker p95 --no-html --json p95.json >p95.stdout 2>p95.stderr || p95_rc=$?
  [ "$p95_rc" -eq 0 ] || { cat p95.stderr >&2; die "kvcache-tracker p95 exited $p95_rc"; }
fi
rm -f summary.json summary.md timings.json
# shellcheck disable=SC2086  # lists of options
timed gates "$python" "$here/gate_pairs.py" "$folder" $gate_args ${GATE_ARGS:-}
publish_rc=0
timed publish locked asv publish --no-pull --config asv.conf.json >publish.log 2>&1 || publish_rc=$?
[ "$publish_rc" -eq 0 ] || echo "public_asv: asv publish exited $publish_rc (publish.log); asv's regressions left out" >&2
echo "{$timings, \"load_after\": \"$(uptime | sed 's/.*load average[s]*: //')\"}" >timings.json
"$python" "$here/summarize.py" "$folder"
