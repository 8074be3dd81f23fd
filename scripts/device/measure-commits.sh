#!/usr/bin/env bash
# Measure the commits that scripts/device/stage-commits.sh staged, with asv, on a machine with
# no git history and no package registry (the lent H200: docs/runner.md, "An air-gapped or
# pre-built benchmark machine"). Runs THERE, in the repository root; on the H200 after
# `source .device/b/install-mlx-cuda.sh` (MLX's CUDA backend on PYTHONPATH). Nothing is fetched:
# pip installs only the staged wheels (--no-index).
#
# Each commit's wheel is installed into a folder of its own, put first on the benchmark
# processes' path (ASV_PYTHONPATH), and asv measures the suite of this checkout with PYTHON as
# an `existing:` environment, filing the result under that commit (--set-commit-hash). asv
# cannot interleave rounds in an existing environment: each commit's rounds run in a row.
#
# Env:  STAGED       the staged folder (default .airgap)
#       PYTHON       the python with the project's dependencies and MLX (default python3)
#       MACHINE      asv machine name the results are filed under (default h200)
#       MEASURE      commits (default): every staged commit once, newest first;
#                    noise: NOISE_RUNS runs of one commit, each in fresh processes, as
#                    scripts/record-noise.sh records them; both: commits, then noise
#       BENCH        asv -b regex for commits (default: RestoreTail.track_p95_ms, see BENCH below)
#       NOISE_BENCH  asv -b regex for noise (default: the benchmarks `kvcache-tracker power` replays)
#       NOISE_RUNS   runs for noise (default 10); NOISE_COMMIT (default: the newest staged)
#       DEADLINE_S   no new commit or noise run starts after this many seconds (default 520):
#                    what is measured by then is packed; the log names what was left out
#       RAM          the machine's memory in bytes for asv's machine.json (default: asv reads
#                    MemTotal, which on the lent GPU machines starts far below their memory)
#       OUT          where the tarball goes (default out/airgap)
# Out:  OUT/MACHINE-results.tar.gz  results/MACHINE/{machine.json,HASH8-existing-*.json} and
#                    results/benchmarks.json (asv's), noise/COMMIT/{run-K.json,benchmarks.json};
#                    rewritten after each commit and noise run; merge it here with
#                    scripts/device/merge-results.sh
#       OUT/measure.log  this script's output
# Exit: 0 all measured; 1 something failed or was left out (the rest is packed); 2 bad input.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
die() { echo "measure-commits: $*" >&2; exit 2; }

staged=${STAGED:-.airgap}
python=${PYTHON:-python3}
machine=${MACHINE:-h200}
measure=${MEASURE:-commits}
# The p95 of 200 zero-copy 8K restores (RestoreTail.track_p95_ms): about 50 s a commit on the
# H200 (docs/runner.md), so 10 commits fit one 10-minute call; the rest of the suite takes
# minutes a commit there (Reconstruct8k alone over a minute): give BENCH for more.
bench=${BENCH:-'bench_tail.RestoreTail.track_p95_ms'}
noise_bench=${NOISE_BENCH:-"bench_reconstruct.Reconstruct8k|time_reconstruct\\('(zero_copy', 2048|gather', 8192)\\)|bench_tail.RestoreTail"}
noise_runs=${NOISE_RUNS:-10}
deadline=${DEADLINE_S:-520}
out=${OUT:-out/airgap}
case $out in /*) ;; *) out=$root/$out ;; esac

[[ $machine =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "MACHINE '$machine' may hold only letters, digits, '.', '_' and '-'"
case $measure in commits|noise|both) ;; *) die "MEASURE must be commits, noise or both, got '$measure'" ;; esac
[[ $noise_runs =~ ^[1-9][0-9]*$ ]] || die "NOISE_RUNS must be a positive integer, got '$noise_runs'"
[[ $deadline =~ ^[0-9]+$ ]] || die "DEADLINE_S must be a number of seconds, got '$deadline'"
[ -s "$staged/commits.txt" ] && [ -f "$staged/repo.bundle" ] ||
  die "$staged/commits.txt or $staged/repo.bundle is missing: run scripts/device/stage-commits.sh here and carry $staged"
if ! command -v git >/dev/null; then  # asv reads commit names and dates from the bundle with git
  [ -x "$staged/bin/git" ] || die "git is not on PATH, nor staged in $staged/bin (stage from a Linux x86_64 machine)"
  bin=$(cd "$staged/bin" && pwd)
  export PATH="$bin:$PATH" GIT_EXEC_PATH="$bin"
fi
python=$(command -v "$python") || die "PYTHON '${PYTHON:-python3}' is not on PATH"
noise_commit=${NOISE_COMMIT:-$(head -n 1 "$staged/commits.txt")}

mkdir -p "$out"
exec > >(tee "$out/measure.log") 2>&1
started=$(date +%s)
elapsed() { echo $(($(date +%s) - started)); }
work=$(mktemp -d "${TMPDIR:-/tmp}/measure-commits.XXXXXX")
conf=asv.airgap.conf.json
trap 'rm -rf "$work" "$conf"' EXIT

# asv and whatever else the machine lacks, from the staged wheels only
site=$work/site
if ls "$staged"/wheels/*.whl >/dev/null 2>&1; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$staged"/wheels/*.whl ||
    die "installing the staged wheels failed (pip's message is above)"
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
paths=$PYTHONPATH
"$python" -c 'import asv, asv_runner' || die "asv is not importable by $python: stage its wheels (STAGE_WHEELS=1)"

# main's history from the bundle, for asv's commit names and dates; the suite is this checkout's
git clone -q --bare "$staged/repo.bundle" "$work/repo.git" || die "git clone of $staged/repo.bundle failed"
sed "s|^\\( *\"repo\": \\)\".\",|\\1\"$work/repo.git\",|" asv.conf.json >"$conf"
grep -q "$work/repo.git" "$conf" || die "asv.conf.json has no '\"repo\": \".\",' line to point at the bundle"
asv() { "$python" -m asv "$@"; }

# The machine's description: asv's own defaults, the GPU (if any) in the cpu field. (`asv machine
# --machine NAME` stores only the fields given that differ from the defaults.)
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
"$python" - "$machine" "$gpu" "${RAM:-}" <<'PY' || die "could not write asv's machine file (the message is above)"
import sys
from asv.machine import Machine, MachineCollection
name, gpu, ram = sys.argv[1:]
info = dict(Machine.get_defaults(), machine=name)
info["cpu"] += f"; GPU: {gpu}" if gpu else ""
info["ram"] = ram or info["ram"]
MachineCollection.save(name, info)
print(f"measure-commits: machine {name}: {info}")
PY
echo "measure-commits: python $python"

status=0
run_asv() {  # $1: commit, $2: -b regex; the commit's wheel goes first on the benchmarks' path
  local folder=$work/kv/$1
  [ -d "$folder" ] || "$python" -m pip install -q --no-index --no-deps --no-compile --target "$folder" \
    "$staged/commits/$1"/*.whl || { echo "measure-commits: installing the wheel of $1 failed"; return 1; }
  ASV_PYTHONPATH="$folder:$paths" asv run --config "$conf" --machine "$machine" --environment "existing:$python" \
    --set-commit-hash "$1" --record-samples --durations all -b "$2"
}

pack=$work/pack
mkdir -p "$pack/results/$machine"
pack_now() {  # the tarball of all measured so far, replaced whole: a call killed later still returns it
  cp .asv/results/"$machine"/*.json .asv/results/benchmarks.json "$pack/results/$machine/" 2>/dev/null
  mv "$pack/results/$machine/benchmarks.json" "$pack/results/" 2>/dev/null
  tar -C "$pack" -czf "$work/packing.tar.gz" . && mv "$work/packing.tar.gz" "$out/$machine-results.tar.gz"
}
if [ "$measure" != noise ]; then
  left=""
  for commit in $(cat "$staged/commits.txt"); do
    if [ "$(elapsed)" -ge "$deadline" ]; then left="$left ${commit:0:8}"; continue; fi
    echo "measure-commits: ${commit:0:8} ($(elapsed) s)"
    run_asv "$commit" "$bench" || { echo "measure-commits: asv run exited $? at ${commit:0:8}"; status=1; }
    pack_now
  done
  [ -z "$left" ] || { echo "measure-commits: DEADLINE_S=$deadline passed, not measured:$left"; status=1; }
  mv .asv/results/"$machine"/"${noise_commit:0:8}"-*.json "$work/" 2>/dev/null  # packed; noise runs start afresh
fi
if [ "$measure" != commits ]; then
  mkdir -p "$pack/noise/$noise_commit"
  for k in $(seq 1 "$noise_runs"); do
    if [ "$(elapsed)" -ge "$deadline" ]; then echo "measure-commits: DEADLINE_S=$deadline passed after $((k - 1)) noise runs"; status=1; break; fi
    echo "measure-commits: noise run $k/$noise_runs of ${noise_commit:0:8} ($(elapsed) s)"
    run_asv "$noise_commit" "$noise_bench" >/dev/null || { echo "measure-commits: noise run $k exited $?"; status=1; }
    mv .asv/results/"$machine"/"${noise_commit:0:8}"-existing-*.json "$pack/noise/$noise_commit/run-$k.json" 2>/dev/null
    cp .asv/results/benchmarks.json "$pack/noise/$noise_commit/"
    pack_now
  done
fi
pack_now || die "packing the results failed"
echo "measure-commits: done in $(elapsed) s: $out/$machine-results.tar.gz ($(cd "$pack" && find . -name '*.json' | wc -l | tr -d ' ') files)"
exit "$status"
