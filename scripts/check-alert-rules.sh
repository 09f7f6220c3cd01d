#!/usr/bin/env bash
# Checks the example alert rules of docs/operations.md with promtool (the ```yaml block after
# "## Alert rules"). Without promtool on PATH (or in $PROMTOOL) it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
promtool=${PROMTOOL:-$(command -v promtool || true)}
if [ -z "$promtool" ]; then
  echo "promtool not found: alert rules not checked (Debian: apt-get install prometheus)"
  exit 0
fi
rules=$(mktemp --suffix=.yml)
trap 'rm -f "$rules"' EXIT
awk '/^## Alert rules/{section=1} section && /^```yaml/{inside=1; next} inside && /^```/{exit} inside{print}' \
  docs/operations.md >"$rules"
[ -s "$rules" ] || { echo "no alert rules found in docs/operations.md" >&2; exit 1; }
"$promtool" check rules "$rules"
