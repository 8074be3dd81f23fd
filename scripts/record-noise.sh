#!/usr/bin/env bash
# Record run-to-run noise: the restore suites of ONE commit measured RUNS times in a row with
# asv, each run in fresh processes, on this machine as it is (other load included). The
# result files are what `kvcache-tracker power` replays (docs/tracker.md, "Detection power").
#
# Args: COMMIT (default HEAD)   Env: RUNS (default 10), OUT (default .asv/noise/COMMIT),
#       BENCH (asv -b regex, default the restore and tail suites)
# Out:  OUT/run-K.json  asv's results file of run K, raw samples included; OUT/benchmarks.json
#       (asv's description of the suite: each benchmark's rounds, one process each)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
commit=$(git rev-parse "${1:-HEAD}^{commit}")
runs=${RUNS:-10}
bench=${BENCH:-'bench_reconstruct|bench_tail.RestoreTail|bench_pool.PoolOpsProbes'}
out=${OUT:-.asv/noise/$commit}
case $out in /*) ;; *) out=$root/$out ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/record-noise.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "record-noise: $commit, $runs runs of '$bench' -> $out"
git clone -q "$root" "$work/repo"
git -C "$work/repo" checkout -q "$commit"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$work/repo[bench]"
mkdir -p "$out"
cd "$work/repo"
"$work/venv/bin/asv" machine --yes --machine noise >/dev/null
for k in $(seq 1 "$runs"); do
  echo "record-noise: run $k/$runs ($(date -u +%H:%M:%S))"
  "$work/venv/bin/asv" run --machine noise --environment "existing:$work/venv/bin/python" \
    --set-commit-hash "$commit" --record-samples -b "$bench" >/dev/null
  cp .asv/results/noise/"${commit:0:8}"-existing-*.json "$out/run-$k.json"
  cp .asv/results/benchmarks.json "$out/benchmarks.json"  # the rounds of each benchmark
  rm .asv/results/noise/"${commit:0:8}"-existing-*.json
done
echo "record-noise: done ($(date -u +%H:%M:%S))"
