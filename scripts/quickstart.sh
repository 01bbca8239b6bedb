#!/usr/bin/env bash
# The main job on a fresh machine: install, train the example model, deploy it to the
# embedded local AWS, and call its HTTP endpoint with a real request.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
echo "==> installing into .venv"
bash scripts/setup.sh build
export PATH="$PWD/.venv/bin:$PATH"
echo "==> training the example model (breast cancer, scikit-learn → ONNX)"
python examples/breast_cancer/train.py
echo "==> validating mlops.yaml"
mlops validate
echo "==> deploying to the embedded local AWS"
mlops deploy
echo "==> calling the endpoint over HTTP"
mlops invoke predict --input examples/breast_cancer/data/sample_request.json
url=$(mlops url predict)
echo "==> sending traffic from a new scanner whose size measurements read 35% high"
python examples/breast_cancer/simulate_drift.py "$url" --rows 300
echo "==> running the drift monitor (its schedule would fire it daily)"
mlops monitor run diagnosis-drift
mkdir -p reports
mlops monitor report diagnosis-drift --html reports/diagnosis-drift.html > /dev/null
echo "==> the e-mailed report:"
mlops mail list
echo "==> done in $(( $(date +%s) - start ))s."
echo "    report: reports/diagnosis-drift.html (open it in a browser); dashboard: mlops dashboard --open"
echo "    next: mlops plan, mlops status, mlops rollout status, mlops destroy"
