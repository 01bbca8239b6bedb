#!/usr/bin/env bash
# Install what the tests need and run them. CI runs exactly this (see .ci/run).
# The tests run in one process unless MLOPS_TEST_WORKERS is set (pytest-xdist workers, e.g.
# 3: the end-to-end tests spend much of their time waiting on their local AWS; the parallel
# run is not yet measured whole on a 2-core machine). Arguments go to pytest, e.g.
# `-m "not network"` offline.
set -euo pipefail
cd "$(dirname "$0")/.."
# checkov in a venv of its own (it pins an older boto3), installed beside .venv
bash scripts/checkov.sh >/dev/null &
checkov=$!
bash scripts/setup.sh build,dev
wait "$checkov"
# loadgroup: tests/conftest.py groups the tests (a module's or a folder's session fixtures on
# one worker, the end-to-end tests one by one) and starts the longest first.
exec .venv/bin/python -m pytest -n "${MLOPS_TEST_WORKERS:-0}" --dist loadgroup "$@"
