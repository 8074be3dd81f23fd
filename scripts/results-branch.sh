#!/usr/bin/env bash
# Keep asv results in git, on a branch of their own, across CI runs.
#
#   scripts/results-branch.sh fetch   restore $RESULTS_DIR from the results branch
#   scripts/results-branch.sh push    commit $RESULTS_DIR onto the results branch and push it
#
# Env: RESULTS_REMOTE (a remote name or URL; default origin), RESULTS_BRANCH (default
# asv-results), RESULTS_DIR (default .asv/results), GITHUB_TOKEN (optional: HTTPS auth for
# github.com, passed to git through the environment only, never written to disk).
#
# Invariants: the branch's files are the results directory's files: asv's results
# (benchmarks.json, MACHINE/*.json) and the re-measurement verdicts, confirmations.json
# (kvcache-tracker confirm writes it there). `push` only adds or updates files: it starts from
# the branch's current tree, so results that another run or machine pushed, or that were
# deleted locally, stay on the branch; it never force-pushes (a rejected push is rebuilt on the
# new tip and retried). `fetch` never overwrites a file already present locally. The verdicts
# are only ever added to: where both the branch and the results directory hold a
# confirmations.json, fetch and push first make the local one their union (one verdict per
# benchmark, machine, env and commit; the branch's first), so the pushed file never lacks a
# verdict that another job pushed meanwhile. The union is the runner's python3, standard
# library only (the results job does not install the project).
# A missing branch is not an error: fetch restores nothing, push creates it.
# The branch is fetched into a repository of its own ($RESULTS_DIR/../results.git), so the
# project's repository (which asv clones) never sees it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
remote=${RESULTS_REMOTE:-origin}
branch=${RESULTS_BRANCH:-asv-results}
results_dir=${RESULTS_DIR:-$root/.asv/results}
tip_ref=refs/heads/tip
verdicts=confirmations.json  # kvcache-tracker confirm's verdicts, in the results directory

die() { echo "results-branch: $*" >&2; exit 2; }

remote_url() {
  if git -C "$root" remote get-url "$remote" >/dev/null 2>&1; then
    git -C "$root" remote get-url "$remote"
  else
    echo "$remote"
  fi
}

use_token_if_given() {
  [ -n "${GITHUB_TOKEN:-}" ] || return 0
  local n=${GIT_CONFIG_COUNT:-0}
  export "GIT_CONFIG_KEY_$n=http.https://github.com/.extraheader"
  export "GIT_CONFIG_VALUE_$n=AUTHORIZATION: basic $(printf 'x-access-token:%s' "$GITHUB_TOKEN" | base64 | tr -d '\n')"
  export GIT_CONFIG_COUNT=$((n + 1))
}

rgit() { git --git-dir="$store" "$@"; }

# Fetch the branch tip into the local store; print its hash, or nothing when it does not exist.
fetch_tip() {
  local listed
  listed=$(rgit ls-remote --heads "$url" "refs/heads/$branch") || die "cannot reach $url (see git's message above)"
  [ -n "$listed" ] || return 0
  rgit fetch -q --no-tags --depth=1 "$url" "+refs/heads/$branch:$tip_ref" || die "cannot fetch $branch from $url"
  rgit rev-parse "$tip_ref"
}

# Write the files of commit $1 that are missing from $results_dir; print how many.
restore_missing() {
  local index missing
  index=$(mktemp) missing=$(mktemp)
  GIT_INDEX_FILE=$index rgit read-tree "$1"
  rgit ls-tree -r -z --name-only "$1" | while IFS= read -r -d '' path; do
    [ -e "$results_dir/$path" ] || printf '%s\0' "$path"
  done >"$missing"
  GIT_INDEX_FILE=$index rgit --work-tree="$results_dir" checkout-index -z --stdin <"$missing"
  tr -cd '\0' <"$missing" | wc -c | tr -d ' '
  rm -f "$index" "$missing"
}

# Make $results_dir/$verdicts the union of itself and the branch's copy at commit $1 (when the
# branch has one); replaced whole, so a failure leaves it as it was. Prints how many verdicts
# the branch added.
merge_verdicts() {
  local local_file=$results_dir/$verdicts branch_copy merged added
  rgit cat-file -e "$1:$verdicts" 2>/dev/null || { echo 0; return 0; }
  branch_copy=$(mktemp) merged=$(mktemp "$results_dir/.verdicts-merge.XXXXXX")
  rgit show "$1:$verdicts" >"$branch_copy"
  added=$(python3 - "$branch_copy" "$local_file" "$merged" <<'PY'
import json, os, sys
branch_copy, local_file, merged = sys.argv[1:]
def verdicts(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            found = json.load(f)["verdicts"]
        if not isinstance(found, list) or not all(isinstance(v, dict) for v in found):
            raise ValueError("its verdicts are not a list of objects")
        return found
    except (OSError, ValueError, KeyError, TypeError) as error:
        sys.exit(f"results-branch: cannot read {what} (not kvcache-tracker confirm's verdicts: {error}); fix or remove it")
def key(verdict):
    return tuple(str(verdict.get(k)) for k in ("benchmark", "machine", "env", "commit"))
ours = verdicts(branch_copy, "the branch's confirmations.json")
mine = verdicts(local_file, local_file) if os.path.exists(local_file) else []
seen = {key(v) for v in ours}
union = ours + [v for v in mine if key(v) not in seen and not seen.add(key(v))]
with open(merged, "w", encoding="utf-8") as f:
    json.dump({"verdicts": union}, f, indent=1)
print(len(union) - len(mine))
PY
  ) || { rm -f "$branch_copy" "$merged"; die "cannot merge the branch's $verdicts into $local_file (the reason is above)"; }
  mv "$merged" "$local_file"
  rm -f "$branch_copy"
  echo "$added"
}

# Remove from index $1 every path that is not an asv results file (benchmarks.json,
# MACHINE/*.json) or the verdicts (confirmations.json): the branch holds data only, whatever
# else lies in $results_dir.
drop_non_results() {
  GIT_INDEX_FILE=$1 rgit ls-files -z | while IFS= read -r -d '' path; do
    case $path in
      */*/*) ;;
      *.json) continue ;;
    esac
    echo "results-branch: not pushing $path (not an asv results file)" >&2
    GIT_INDEX_FILE=$1 rgit rm -q --cached -- "$path" >/dev/null
  done
}

# Commit the branch's tree plus every file of $results_dir (added or changed) on top of $1
# (empty: a first, parentless commit); print the commit, or nothing when nothing is new.
commit_results() {
  local parent=$1 index tree
  index=$(mktemp)
  if [ -n "$parent" ]; then GIT_INDEX_FILE=$index rgit read-tree "$parent"; else GIT_INDEX_FILE=$index rgit read-tree --empty; fi
  GIT_INDEX_FILE=$index rgit --work-tree="$results_dir" add --ignore-removal -- "$results_dir"
  drop_non_results "$index"
  tree=$(GIT_INDEX_FILE=$index rgit write-tree)
  rm -f "$index"
  if [ -n "$parent" ] && [ "$tree" = "$(rgit rev-parse "$parent^{tree}")" ]; then return 0; fi
  if [ -z "$parent" ] && [ -z "$(rgit ls-tree "$tree")" ]; then return 0; fi
  local message
  message="asv results after $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo 'an unknown commit')"
  if [ -n "$parent" ]; then
    rgit commit-tree "$tree" -p "$parent" -m "$message"
  else
    rgit commit-tree "$tree" -m "$message"
  fi
}

do_fetch() {
  local tip
  tip=$(fetch_tip)
  if [ -z "$tip" ]; then
    echo "results-branch: no branch $branch at $url yet: no earlier results to restore"
    return 0
  fi
  local kept_verdicts=no added
  [ ! -e "$results_dir/$verdicts" ] || kept_verdicts=yes
  echo "results-branch: restored $(restore_missing "$tip") result files from $branch ($tip) into $results_dir"
  if [ "$kept_verdicts" = yes ]; then
    added=$(merge_verdicts "$tip")
    echo "results-branch: $added verdicts of $branch added to the local $verdicts"
  fi
}

do_push() {
  export GIT_AUTHOR_NAME=${GIT_AUTHOR_NAME:-github-actions[bot]}
  export GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL:-41898282+github-actions[bot]@users.noreply.github.com}
  export GIT_COMMITTER_NAME=${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}
  export GIT_COMMITTER_EMAIL=${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}
  local attempt tip commit added
  for attempt in 1 2 3 4 5; do
    tip=$(fetch_tip)
    if [ -n "$tip" ]; then
      added=$(merge_verdicts "$tip")
      [ "$added" = 0 ] || echo "results-branch: $added verdicts that $branch holds were added to the local $verdicts before the push"
    fi
    commit=$(commit_results "$tip")
    if [ -z "$commit" ]; then
      echo "results-branch: $branch already holds every result file: nothing to push"
      return 0
    fi
    if rgit push -q "$url" "$commit:refs/heads/$branch"; then
      echo "results-branch: pushed $commit to $branch ($(rgit diff-tree -r --root --no-commit-id --name-only "$commit" | wc -l | tr -d ' ') files added or changed)"
      return 0
    fi
    echo "results-branch: push rejected (attempt $attempt): $branch moved; rebuilding on its new tip" >&2
    sleep $((attempt * 2))
  done
  die "could not push to $branch after 5 attempts; the results are still in $results_dir"
}

[ $# -eq 1 ] || die "usage: scripts/results-branch.sh fetch|push"
url=$(remote_url)
mkdir -p "$results_dir"
results_dir=$(cd "$results_dir" && pwd)
store="$(dirname "$results_dir")/results.git"
[ -d "$store" ] || git init -q --bare "$store"
use_token_if_given
case $1 in
  fetch) do_fetch ;;
  push) do_push ;;
  *) die "unknown command '$1': use fetch or push" ;;
esac
