# Shared by the case studies' run.sh: find mlops and python, make a fresh scratch copy of the
# example (retraining edits mlops.yaml and the artifact: the committed files stay as they are),
# and a few helpers. Sourced, not run. Overrides: MLOPS="python -m framework.cli", PY=python,
# MLOPS_LOCAL_PORT (each case study has its own default, so all three can run side by side).
set -euo pipefail

EXAMPLE_DIR=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
REPO_DIR=$(cd "$EXAMPLE_DIR/../.." && pwd)
if [ -z "${PY:-}" ]; then
  if [ -x "$REPO_DIR/.venv/bin/python" ]; then PY="$REPO_DIR/.venv/bin/python"
  else PY=$(command -v python3 || command -v python); fi
fi
if [ -z "${MLOPS:-}" ]; then
  if [ -x "$REPO_DIR/.venv/bin/mlops" ]; then MLOPS="$REPO_DIR/.venv/bin/mlops"
  elif command -v mlops >/dev/null; then MLOPS=mlops
  else MLOPS="$PY -m framework.cli"; fi
fi
WORK="$EXAMPLE_DIR/work"

mlops() { $MLOPS "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
utc() { date -u -d "${1:-now}" +%Y-%m-%dT%H:%M:%S; }   # e.g. utc '+1 sec'

# A fresh scratch copy of the example in ./work (a previous run's local AWS is stopped first).
fresh_workdir() {
  if [ -d "$WORK/.mlops/local" ]; then (cd "$WORK" && mlops local stop >/dev/null 2>&1 || true); fi
  rm -rf "$WORK"
  mkdir -p "$WORK"
  cp "$EXAMPLE_DIR"/mlops.yaml "$EXAMPLE_DIR"/*.py "$WORK"/
  cd "$WORK"
}

# Traffic in the background until `stop_traffic` (a rollout needs requests to judge).
start_traffic() {
  rm -f .stop-traffic
  "$PY" traffic.py --until-file .stop-traffic "$@" > traffic.log 2>&1 &
  TRAFFIC_PID=$!
}
stop_traffic() {
  touch .stop-traffic
  wait "$TRAFFIC_PID" || { echo "traffic failed:"; cat traffic.log; return 1; }
  tail -n 1 traffic.log
}

# The monitor over one window of traffic: `monitor_window NAME START END`.
monitor_window() { mlops monitor run "$1" --window "$2..$3"; }

dashboard() {
  if mlops dashboard --help >/dev/null 2>&1; then mlops dashboard; fi
}
