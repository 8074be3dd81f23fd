#!/usr/bin/env bash
# Clean the self-hosted runner's workspace at the start of a job, keeping the caches
# (docs/runner.md, "Caches"). The workflows check out with `clean: false`, so this replaces
# actions/checkout's `git clean -ffdx`: it removes every untracked and ignored file except
#   .venv      the project's virtualenv (scripts/venv.sh reinstalls only when setup.cfg or
#              pyproject.toml change, or when other extras are asked for)
#   .asv/env   asv's environments (MLX and the other requirements of each measured commit)
# Results, dashboards and reports of an earlier job are removed: a pull request's results must
# never reach the main job's push, and each job restores what it needs. pip's cache lives
# outside the workspace (~/Library/Caches/pip on macOS) and is not touched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "ci-workspace: $root is not a git work tree" >&2; exit 2; }
git clean -ffdxq -e /.venv/ -e /.asv/env/ || { echo "ci-workspace: git clean failed (its message is above)" >&2; exit 2; }
for kept in .venv .asv/env; do
  if [ -d "$kept" ]; then
    echo "ci-workspace: kept $kept ($(du -sk "$kept" | cut -f1) KiB)"
  else
    echo "ci-workspace: no $kept yet (this job makes it)"
  fi
done
