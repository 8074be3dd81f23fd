#!/usr/bin/env bash
# Publish what is in .asv/results, every machine's: asv's dashboard in .asv/html with the
# scripts and styles it takes from CDNs served from it (kvcache-tracker vendor-html), then the
# p95 page beside it and the flags (kvcache-tracker p95: .asv/p95.json, the table in .asv/p95.txt;
# flags dismissed by a re-measurement, RESULTS_DIR/confirmations.json, listed apart).
# Called by scripts/main-job.sh and scripts/device/merge-results.sh; runs under macOS's bash 3.2.
#
# Env:  ASV_MACHINE, ASV_CONFIG as scripts/asv-common.sh takes them
# Exit: 0 published; 3 asv publish failed; 4 kvcache-tracker p95 failed (its output is printed);
#       5 the dashboard could not be vendored and still loads from CDNs (the p95 page and flags
#       were written all the same: the flags matter more than the dashboard's looks)
set -euo pipefail
cd "$(dirname "$0")/.."
job=${job:-publish}
source scripts/asv-common.sh

"$bin/asv" publish ${config_opts[@]+"${config_opts[@]}"} ||
  { echo "$job: asv publish exited $? (its message is above): nothing was published" >&2; exit 3; }
vendored=0
"$bin/kvcache-tracker" vendor-html .asv/html ||
  { echo "$job: the dashboard in .asv/html still loads from CDNs (the reason is above); the p95 flags follow" >&2; vendored=5; }
"$bin/kvcache-tracker" p95 --results .asv/results --html .asv/html --json .asv/p95.json \
  ${config_opts[@]+"${config_opts[@]}"} >.asv/p95.txt ||
  { cat .asv/p95.txt; exit 4; }
exit "$vendored"
