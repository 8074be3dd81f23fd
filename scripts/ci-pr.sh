#!/usr/bin/env bash
# The benchmark step of .github/workflows/benchmarks-pr.yml (self-hosted Apple Silicon runner),
# runnable as is on any machine: measures BASE and HEAD on this machine with
# scripts/pr-compare.sh and leaves the comment for the PR in out/pr-comment.md with the PR's
# number in out/pr-number.txt (the artifact that benchmarks-pr-comment.yml posts).
#
# Env: BASE_SHA, HEAD_SHA (full commit hashes), PR_NUMBER, ASV_MACHINE (optional, passed on).
# Exit status: pr-compare.sh's (the p95 gate: 1 when HEAD is slower), 2 for bad input.
# out/pr-comment.md exists afterwards even when the comparison failed, saying so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() { echo "ci-pr: $*" >&2; exit 2; }

for name in BASE_SHA HEAD_SHA; do
  [[ ${!name:-} =~ ^[0-9a-f]{40}$ ]] || die "$name must be a full 40-character commit hash, got '${!name:-}'"
done
[[ ${PR_NUMBER:-} =~ ^[1-9][0-9]*$ ]] || die "PR_NUMBER must be a pull request number, got '${PR_NUMBER:-}'"

# asv resolves the branches of asv.conf.json: give a detached checkout its local main. Under
# GitHub Actions that is the current origin/main (the runner's kept workspace may hold the main
# of an earlier job); elsewhere a local main is left as it is.
if [ "${GITHUB_ACTIONS:-}" = true ] && git rev-parse -q --verify refs/remotes/origin/main >/dev/null &&
  [ "$(git symbolic-ref -q --short HEAD || true)" != main ]; then
  git branch -f main origin/main >/dev/null
fi
git rev-parse -q --verify refs/heads/main >/dev/null || git branch main origin/main ||
  die "no branch main and no origin/main: asv needs main"

mkdir -p out
rm -f out/pr-comment.md
echo "$PR_NUMBER" >out/pr-number.txt
status=0
bash scripts/pr-compare.sh "$BASE_SHA" "$HEAD_SHA" || status=$?
if [ ! -s out/pr-comment.md ]; then
  printf '### Benchmarks\n\nThe comparison of %s with %s failed (exit %s) before writing its report: see the workflow run.\n' \
    "${BASE_SHA:0:12}" "${HEAD_SHA:0:12}" "$status" >out/pr-comment.md
fi
exit "$status"
