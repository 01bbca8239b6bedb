#!/usr/bin/env bash
# Install what the tests need and run them. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build,dev
bash scripts/checkov.sh >/dev/null   # checkov in a venv of its own (it pins an older boto3)
exec .venv/bin/python -m pytest "$@"
