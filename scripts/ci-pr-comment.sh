#!/usr/bin/env bash
# Post the benchmark comparison of a pull request as ONE comment, edited in place on later runs
# (benchmarks-pr-comment.yml). Usage: scripts/ci-pr-comment.sh ARTIFACT_DIR [--dry-run]
#
# PR_NUMBER and RUN_HEAD_SHA come from the measured run's name, which GitHub sets from its own
# event (trusted). ARTIFACT_DIR holds pr-number.txt and pr-comment.md from benchmarks-pr.yml's
# artifact: untrusted data (a labelled fork PR produced them). Its number must be PR_NUMBER, and
# its markdown only ever travels as a file into the API request body. When the artifact is
# missing and the measured run failed (before uploading it), the comment says so and links the
# run; missing after a success (the benchmark job was skipped), nothing is posted. Nothing is
# posted unless the PR's head is still the measured commit (else a newer run will comment).
# --dry-run prints the comment body and posts nothing (no gh, no network).
# Env: PR_NUMBER, RUN_HEAD_SHA (required), RUN_URL (linked in the comment), RUN_CONCLUSION
# (the measured run's: success or failure), and for posting GH_TOKEN (pull-requests: write)
# and GITHUB_REPOSITORY (owner/name).
# Exit: 0 posted, or nothing to post; 2 bad input (one line on stderr).
set -euo pipefail

marker='<!-- kvcache-benchmarks -->'
max_chars=60000  # bytes; GitHub refuses comment bodies over 65536 characters

die() { echo "ci-pr-comment: $*" >&2; exit 2; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: scripts/ci-pr-comment.sh ARTIFACT_DIR [--dry-run]"
dir=$1
dry_run=${2:-}
[ -z "$dry_run" ] || [ "$dry_run" = --dry-run ] || die "unknown option '$dry_run': only --dry-run"
pr=${PR_NUMBER:-}
[[ $pr =~ ^[1-9][0-9]{0,9}$ ]] || die "PR_NUMBER must be a pull request number, got '$pr'"
[[ ${RUN_HEAD_SHA:-} =~ ^[0-9a-f]{40}$ ]] || die "RUN_HEAD_SHA must be a full 40-character commit hash, got '${RUN_HEAD_SHA:-}'"

have_report=no
if [ -f "$dir/pr-number.txt" ] && [ -f "$dir/pr-comment.md" ]; then
  have_report=yes
  artifact_pr=$(head -c 20 "$dir/pr-number.txt" | tr -d '[:space:]')
  [[ $artifact_pr =~ ^[1-9][0-9]{0,9}$ ]] || die "$dir/pr-number.txt does not hold a pull request number"
  [ "$artifact_pr" = "$pr" ] || die "the artifact names PR #$artifact_pr, but the measured run was for PR #$pr: not posting"
fi

if [ "$have_report" = no ] && [ "${RUN_CONCLUSION:-}" = success ]; then
  # A run that succeeded without a report skipped its benchmark job: nothing was measured.
  echo "ci-pr-comment: the run of PR #$pr succeeded without a report (its benchmark job was skipped): nothing to post"
  exit 0
fi

body=$(mktemp)
trap 'rm -f "$body"' EXIT
{
  echo "$marker"
  if [ "$have_report" = yes ]; then
    head -c "$max_chars" "$dir/pr-comment.md"
    [ $(($(wc -c <"$dir/pr-comment.md"))) -le "$max_chars" ] || printf '\n\n_(truncated: the full report is in the run'"'"'s artifact)_'
  else
    printf '### Benchmarks\n\nThe benchmark run for %s ended (%s) before it uploaded a report: its log says why.\n' \
      "${RUN_HEAD_SHA:0:12}" "${RUN_CONCLUSION:-no conclusion given}"
  fi
  [ -z "${RUN_URL:-}" ] || printf '\n\n[Workflow run](%s)\n' "$RUN_URL"
} >"$body"

if [ -n "$dry_run" ]; then
  cat "$body"
  exit 0
fi

: "${GITHUB_REPOSITORY:?set GITHUB_REPOSITORY (owner/name)}"
head=$(gh api "repos/$GITHUB_REPOSITORY/pulls/$pr" --jq .head.sha) || die "cannot read PR #$pr (gh's message is above)"
if [ "$head" != "$RUN_HEAD_SHA" ]; then
  # A newer push, whose own run will comment.
  echo "::notice::not posting: PR #$pr's head is $head, not the measured $RUN_HEAD_SHA"
  exit 0
fi

ours=$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$pr/comments" \
  --jq ".[] | select(.user.login == \"github-actions[bot]\" and (.body | startswith(\"$marker\"))) | .id") ||
  die "cannot list the comments of PR #$pr (gh's message is above)"
comment_id=${ours%%$'\n'*}  # the first (oldest) of ours
if [ -n "$comment_id" ]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$comment_id" -F "body=@$body" --jq .html_url
else
  gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$pr/comments" -F "body=@$body" --jq .html_url
fi
