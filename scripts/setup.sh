#!/usr/bin/env bash
# Create .venv (once) and install the project into it with the given extras.
# Usage: scripts/setup.sh [extras]   e.g. scripts/setup.sh build,dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-build}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
# (the filter drops pip's notes about package-index folders absent on this machine)
.venv/bin/python -m pip install --quiet -e ".[${extras}]" 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
