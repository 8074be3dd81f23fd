#!/usr/bin/env bash
# Merge what scripts/device/measure-commits.sh measured on another machine into this checkout's
# results, then publish: asv's dashboard and the p95 flags show every machine's series.
# Runs HERE (docs/runner.md, "An air-gapped or pre-built benchmark machine").
#
# Args: TARBALL      the MACHINE-results.tar.gz that came back from the machine
# Env:  ASV_CONFIG   asv config file in the repository root (default asv.conf.json); its
#                    results_dir must be .asv/results, as the main job's
# Out:  .asv/results/MACHINE/*.json   the tarball's results, added; nothing here is overwritten
#                    or deleted (a file with other contents stops the merge: merge_results.py)
#       .asv/noise/MACHINE/COMMIT/run-K.json  its noise runs, if any (`kvcache-bench power
#                    --record-from` reads such a folder)
#       .asv/html, .asv/p95.json     asv publish and kvcache-bench p95, as the main job writes them
# Exit: 0 merged and published; 2 bad input or a conflict (nothing merged); another: the step that failed.
set -euo pipefail
job=merge-results
[ $# -eq 1 ] || { echo "$job: usage: scripts/device/merge-results.sh TARBALL" >&2; exit 2; }
[ -f "$1" ] || { echo "$job: no file $1: pass the MACHINE-results.tar.gz that measure-commits.sh wrote" >&2; exit 2; }
tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
config=${ASV_CONFIG:-asv.conf.json}
[ -f "$config" ] && [ "$(dirname "$config")" = . ] ||
  { echo "$job: ASV_CONFIG '$config' must name a config file in the repository root" >&2; exit 2; }
python=$(bash scripts/venv.sh bench | tail -n 1) ||
  { echo "$job: scripts/venv.sh bench failed (its message is above)" >&2; exit 2; }
bin=$(dirname "$python")
"$bin/python" scripts/device/merge_results.py "$tarball" .asv/results .asv/noise
"$bin/asv" publish --config "$config"
"$bin/kvcache-bench" p95 --config "$config" --results .asv/results --json .asv/p95.json
