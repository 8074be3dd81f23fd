#!/usr/bin/env bash
# Post the benchmark comparison of a pull request as ONE comment, edited in place on later runs
# (benchmarks-pr-comment.yml). Usage: scripts/ci-pr-comment.sh ARTIFACT_DIR [--dry-run]
#
# ARTIFACT_DIR holds pr-number.txt and pr-comment.md from benchmarks-pr.yml's artifact. Both are
# untrusted data (a labelled fork PR produced them): the number must be digits and name a PR
# whose head is the commit the run measured (else nothing is posted: a newer run will); the
# markdown only ever travels as a file into the API request body. --dry-run prints the comment body and posts nothing (no gh, no network).
# Env (posting): GH_TOKEN (pull-requests: write), GITHUB_REPOSITORY (owner/name),
# RUN_HEAD_SHA (the measured run's head commit), RUN_URL (optional: linked in the comment).
set -euo pipefail

marker='<!-- kvcache-benchmarks -->'
max_chars=60000  # bytes; GitHub refuses comment bodies over 65536 characters

die() { echo "ci-pr-comment: $*" >&2; exit 2; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: scripts/ci-pr-comment.sh ARTIFACT_DIR [--dry-run]"
dir=$1
dry_run=${2:-}
[ -z "$dry_run" ] || [ "$dry_run" = --dry-run ] || die "unknown option '$dry_run': only --dry-run"
[ -f "$dir/pr-number.txt" ] && [ -f "$dir/pr-comment.md" ] ||
  die "$dir must hold pr-number.txt and pr-comment.md (the benchmarks-pr artifact)"
pr=$(head -c 20 "$dir/pr-number.txt" | tr -d '[:space:]')
[[ $pr =~ ^[1-9][0-9]{0,9}$ ]] || die "$dir/pr-number.txt does not hold a pull request number"

body=$(mktemp)
trap 'rm -f "$body"' EXIT
{
  echo "$marker"
  head -c "$max_chars" "$dir/pr-comment.md"
  [ $(($(wc -c <"$dir/pr-comment.md"))) -le "$max_chars" ] || printf '\n\n_(truncated: the full report is in the run'"'"'s artifact)_'
  [ -z "${RUN_URL:-}" ] || printf '\n\n[Workflow run](%s)\n' "$RUN_URL"
} >"$body"

if [ -n "$dry_run" ]; then
  cat "$body"
  exit 0
fi

: "${GITHUB_REPOSITORY:?set GITHUB_REPOSITORY (owner/name)}" "${RUN_HEAD_SHA:?set RUN_HEAD_SHA}"
head=$(gh api "repos/$GITHUB_REPOSITORY/pulls/$pr" --jq .head.sha)
if [ "$head" != "$RUN_HEAD_SHA" ]; then
  # Usually a newer push, whose own run will comment; else an artifact naming another PR.
  echo "::notice::not posting: PR #$pr's head is $head, not the measured $RUN_HEAD_SHA"
  exit 0
fi

ours=$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$pr/comments" \
  --jq ".[] | select(.user.login == \"github-actions[bot]\" and (.body | startswith(\"$marker\"))) | .id")
comment_id=${ours%%$'\n'*}  # the first (oldest) of ours
if [ -n "$comment_id" ]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$comment_id" -F "body=@$body" --jq .html_url
else
  gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$pr/comments" -F "body=@$body" --jq .html_url
fi
