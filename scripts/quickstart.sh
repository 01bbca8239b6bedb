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
echo "==> done in $(( $(date +%s) - start ))s. Try: mlops plan, mlops status, mlops destroy"
