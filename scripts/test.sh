#!/usr/bin/env bash
# Install what the tests need and run them. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build,dev
exec .venv/bin/python -m pytest "$@"
