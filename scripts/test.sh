#!/usr/bin/env bash
# Install what the tests need and run them. CI runs exactly this (see .ci/run).
# The tests run on 3 pytest-xdist workers (MLOPS_TEST_WORKERS; 0 runs them in one process):
# the end-to-end tests spend much of their time waiting on their local AWS, so 3 workers keep
# 2 cores busy. Arguments go to pytest, e.g. `-m "not network"` offline.
set -euo pipefail
cd "$(dirname "$0")/.."
# checkov in a venv of its own (it pins an older boto3), installed beside .venv
bash scripts/checkov.sh >/dev/null &
checkov=$!
bash scripts/setup.sh build,dev
wait "$checkov"
# loadgroup: tests/conftest.py groups the tests (a module's or a folder's session fixtures on
# one worker, the end-to-end tests one by one) and starts the longest first.
exec .venv/bin/python -m pytest -n "${MLOPS_TEST_WORKERS:-3}" --dist loadgroup "$@"
