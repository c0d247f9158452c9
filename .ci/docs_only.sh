#!/usr/bin/env bash
# Print docs_only=true when every file changed since BASE is documentation (docs/, *.md) that dvc.yaml does not
# name; docs_only=false otherwise, and when nothing changed. The CPU tier then skips the pipeline reproduction.
# Usage: .ci/docs_only.sh BASE   (in the repository root, with history back to BASE)
set -euo pipefail
changed="$(git diff --name-only "$1" HEAD)"
docs=true
[ -n "$changed" ] || docs=false
while IFS= read -r path; do
  case "$path" in
    docs/* | *.md) if grep -qF -- "$path" dvc.yaml; then docs=false; fi ;;
    *) docs=false ;;
  esac
done <<<"$changed"
echo "docs_only=$docs"
