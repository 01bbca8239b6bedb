#!/usr/bin/env bash
# The delivery pipeline `mlops ci init` writes, run on the example against the embedded local
# AWS: validate → gates → plan (saved, with its Markdown comment) → deploy that plan → the lock
# matches → a real request answers. Assumes scripts/setup.sh has run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
work=$(mktemp -d)
had_lock=$([ -f mlops.lock ] && echo yes || echo no)
cleanup() {
  mlops local stop >/dev/null 2>&1 || true
  rm -rf "$work"
  [ "$had_lock" = yes ] || rm -f mlops.lock  # this run's lock describes a throwaway deploy
}
trap cleanup EXIT
mlops validate
mlops test --offline
mlops synth --stage prod -o "$work/template.json"  # CloudFormation deploys the AWS stage
mlops plan -o "$work/plan.json" --markdown "$work/plan.md"
mlops deploy "$work/plan.json"
mlops lock --check
mlops invoke predict --input examples/breast_cancer/data/sample_request.json > "$work/answer.json"
grep -q '"predictions"' "$work/answer.json"
mlops destroy --yes
echo "example pipeline: ok"
