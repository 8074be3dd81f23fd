#!/usr/bin/env bash
# Stage commits of main for a benchmark machine that has no git history and no package
# registry (the lent H200: docs/runner.md, "An air-gapped or pre-built benchmark machine").
# Runs HERE, in a checkout with main's history; scripts/device/measure-commits.sh measures
# what it stages THERE.
#
# Args: RANGE_OR_N  a number N (main's last N first-parent commits; default 10) or a git
#                   range (A..B, first parents of B not in A)
# Env:  STAGED        the folder to fill (default .airgap; git-ignored, carried to the machine)
#       PYTHON        the python whose pip builds the wheels (default python3); pip puts
#                     pyproject.toml's build requirements, from the registry, in an isolated environment
#       SKIP_MEASURED_ON  a machine name: leave out the commits that already have results of
#                     that machine in .asv/results (after a call that ran out of time)
#       STAGE_WHEELS  1 (default): also download what the machine lacks (asv and the parts
#                     of it that image has not, mlx-lm) as cp312 manylinux x86_64 wheels; 0: not
# Out:  STAGED/commits.txt            the staged commits, full hashes, newest first
#       STAGED/commits/HASH/*.whl     each commit's kvcache wheel (built alone: --no-deps)
#       STAGED/repo.bundle            main's history (asv reads commit dates and names from it)
#       STAGED/bin/git                this git, when this is Linux x86_64 (measure-commits.sh uses it
#                                     where the machine has no git; it needs only libc, zlib, pcre2)
#       STAGED/wheels/*.whl           (STAGE_WHEELS=1) asv 0.6.6, asv-runner, json5, Pympler,
#                                     importlib-metadata with lazy-importer and zipp, mlx-lm 0.32.2:
#                                     what the H200's image lacks
# Exit: 0 staged; 2 bad input or a failed build or download (its message says which).
# The new stage is built in a folder inside STAGED and moved into place at the end: a failure
# leaves the previous stage as it was.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
die() { echo "stage-commits: $*" >&2; exit 2; }

staged=${STAGED:-.airgap}
arg=${1:-10}
python=${PYTHON:-python3}
git rev-parse -q --verify refs/heads/main >/dev/null || die "no local branch main (git branch main origin/main)"
case $arg in
  *..*) commits=$(git rev-list --first-parent "$arg") || die "'$arg' is not a git range of main"
        newest=$(echo "$commits" | head -n 1)
        [ -z "$newest" ] || git merge-base --is-ancestor "$newest" main ||
          die "'$arg' ends at $newest, which is not on main: repo.bundle holds main's history only; give a range of main" ;;
  *) [[ $arg =~ ^[1-9][0-9]*$ ]] || die "RANGE_OR_N must be a positive number or a git range A..B, got '$arg'"
     commits=$(git rev-list --first-parent -n "$arg" main) ;;
esac
[ -n "$commits" ] || die "no commit in '$arg'"

work=$(mktemp -d "${TMPDIR:-/tmp}/stage-commits.XXXXXX")
mkdir -p "$staged"
rm -rf "${staged:?}"/.staging.*  # left by a run that was killed
new=$(mktemp -d "$staged/.staging.XXXXXX")
trap 'rm -rf "$work" "$new"' EXIT
mkdir -p "$new/commits"
skip=${SKIP_MEASURED_ON:-}
for commit in $commits; do
  if [ -n "$skip" ] && ls ".asv/results/$skip/${commit:0:8}"-*.json >/dev/null 2>&1; then continue; fi
  mkdir -p "$work/$commit/src"
  { git archive "$commit" | tar -x -C "$work/$commit/src"; } ||
    die "unpacking $commit (git archive | tar) failed (the message is above)"
  "$python" -m pip wheel -q --no-deps -w "$new/commits/$commit" \
    "$work/$commit/src" >"$work/$commit/log" 2>&1 ||
    { cat "$work/$commit/log" >&2; die "building the wheel of $commit failed (pip's message is above)"; }
  echo "$commit" >>"$new/commits.txt"
done
[ -s "$new/commits.txt" ] || die "every commit in '$arg' has results of $skip already: nothing to stage"
if [ "$(uname -sm)" = "Linux x86_64" ]; then mkdir -p "$new/bin" && cp "$(command -v git)" "$new/bin/git"; fi
git bundle create "$new/repo.bundle" main 2>"$work/bundle.log" || { cat "$work/bundle.log" >&2; die "git bundle of main failed"; }

parts="commits commits.txt repo.bundle bin"
if [ "${STAGE_WHEELS:-1}" = 1 ]; then
  parts="$parts wheels"
  platforms=""
  for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms="$platforms --platform $p"
  done
  # shellcheck disable=SC2086  # $platforms is a list of options
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    $platforms -d "$new/wheels" asv==0.6.6 asv-runner==0.3.2 json5==0.17.3 Pympler==1.1 \
    importlib-metadata==10.2.0 lazy-importer==0.1.0 zipp==4.1.2 mlx-lm==0.32.2 ||
    die "pip download of the machine's wheels failed (its message is above; STAGE_WHEELS=0 skips it)"
fi
for part in $parts; do  # the previous stage's parts, replaced by the new ones
  rm -rf "${staged:?}/$part"
  if [ -e "$new/$part" ]; then mv "$new/$part" "$staged/$part"; fi
done
echo "stage-commits: $(wc -l <"$staged/commits.txt" | tr -d ' ') commits staged in $staged ($(du -sk "$staged" | cut -f1) KiB)"
