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
#       .asv/noise/MACHINE/COMMIT/run-K.json  its noise runs, if any (`kvcache-tracker power
#                    --record-from` reads such a folder)
#       .asv/html, .asv/p95.json     scripts/publish.sh, as the main job publishes
# Exit: 0 merged and published; 2 bad input or a conflict (nothing merged); 3-5 as scripts/publish.sh.
set -euo pipefail
job=merge-results
[ $# -eq 1 ] || { echo "$job: usage: scripts/device/merge-results.sh TARBALL" >&2; exit 2; }
[ -f "$1" ] || { echo "$job: no file $1: pass the MACHINE-results.tar.gz that measure-commits.sh wrote" >&2; exit 2; }
tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")/../.."
source scripts/asv-common.sh  # bin, config_opts (ASV_CONFIG), as the main job's
"$bin/python" scripts/device/merge_results.py "$tarball" .asv/results .asv/noise
status=0
job=$job bash scripts/publish.sh || status=$?
[ "$status" -eq 0 ] || exit "$status"
cat .asv/p95.txt
