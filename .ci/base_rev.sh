#!/usr/bin/env bash
# Print the git revision a CI run compares with (the report, the GPU plan):
#   pull_request   the merge base of the pull request's base branch and HEAD (not the moving tip of the branch)
#   push           the commit before the push (github.event.before), when this clone has it
#   otherwise      the merge base of the default branch and HEAD (a run started by hand, a new branch)
# Usage: .ci/base_rev.sh EVENT BASE_REF BEFORE DEFAULT_BRANCH  (needs a clone with history: fetch-depth: 0)
set -euo pipefail
event="$1" base_ref="$2" before="$3" default_branch="$4"
if [ "$event" = "pull_request" ]; then
  git merge-base "origin/$base_ref" HEAD
elif [ "$event" = "push" ] && [ -n "$before" ] && git cat-file -e "$before^{commit}" 2>/dev/null; then
  echo "$before"
else
  git merge-base "origin/$default_branch" HEAD
fi
