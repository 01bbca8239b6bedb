#!/usr/bin/env bash
# Install checkov into .venv-checkov, a virtualenv of its own: checkov pins boto3/botocore
# and packaging to versions older than the project needs, so it cannot share .venv.
# tests/synth/test_checkov.py runs it on the synthesized template (skipped without it).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ ! -x .venv-checkov/bin/checkov ]; then
  "$python" -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install --quiet "checkov>=3.2,<4" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
fi
.venv-checkov/bin/checkov --version
