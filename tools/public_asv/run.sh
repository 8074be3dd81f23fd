#!/usr/bin/env bash
# The tracker on one project's public asv results, in one command:
#
#   tools/public_asv/run.sh PROJECT        (PROJECT: a name in tools/public_asv/projects.json)
#
# 1. layout.py: $PUBLIC_ASV_DATA/PROJECT (default /work/public-data/PROJECT) with the results,
#    an asv.conf.json naming the project's repository and branch (layout.py says where the
#    repositories are read from);
# 2. kvcache-bench p95 --no-html --json p95.json (stdout and stderr kept: p95.stdout, p95.stderr);
# 3. gate_pairs.py: kvcache-bench gate BASE HEAD --machine M over every neighbouring pair
#    (GATE_ARGS passes options: GATE_ARGS="--last 200", GATE_ARGS=--subprocess);
# 4. asv publish (asv's own step detection: html/regressions.json);
# 5. summarize.py: summary.json and summary.md.
# The whole run holds the shared measurement lock (LOCK, default /tmp/kvcache-measure.lock)
# where flock exists, so that it does not disturb a timing run (and its timings, in
# timings.json, do not count the wait for the lock).
# Uses the project's .venv (scripts/venv.sh test). Runs under macOS's bash 3.2.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tools/public_asv"
die() { echo "public_asv: $*" >&2; exit 2; }

[ $# -eq 1 ] || die "usage: tools/public_asv/run.sh PROJECT (a name in $here/projects.json)"
project=$1
lock=${LOCK:-/tmp/kvcache-measure.lock}
if [ -z "${PUBLIC_ASV_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  echo "public_asv: waiting for $lock" >&2
  PUBLIC_ASV_LOCKED=1 exec flock "$lock" "$0" "$@"
fi
python=$(bash "$root/scripts/venv.sh" test | tail -n 1) || die "scripts/venv.sh test failed (its message is above)"
bin=$(dirname "$python")
export PATH="$bin:$PATH"
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
rm -f p95.json p95.stdout p95.stderr gates.jsonl summary.json summary.md timings.json
echo "public_asv: $project in $folder (load: $(uptime | sed 's/.*load average[s]*: //'))" >&2

p95_rc=0
timed p95 kvcache-bench p95 --no-html --json p95.json >p95.stdout 2>p95.stderr || p95_rc=$?
[ "$p95_rc" -eq 0 ] || { cat p95.stderr >&2; die "kvcache-bench p95 exited $p95_rc"; }
# shellcheck disable=SC2086  # GATE_ARGS is a list of options
timed gates "$python" "$here/gate_pairs.py" "$folder" ${GATE_ARGS:-}
publish_rc=0
timed publish asv publish --no-pull --config asv.conf.json >publish.log 2>&1 || publish_rc=$?
[ "$publish_rc" -eq 0 ] || echo "public_asv: asv publish exited $publish_rc (publish.log); asv's regressions left out" >&2
echo "{$timings, \"load_after\": \"$(uptime | sed 's/.*load average[s]*: //')\"}" >timings.json
"$python" "$here/summarize.py" "$folder"
