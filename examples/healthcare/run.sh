#!/usr/bin/env bash
# Diagnosis support, end to end on the embedded local AWS (no account, no Docker):
# train a calibrated classifier → register it → the model card → promotion to production is
# refused until two physicians approve → deploy the endpoint that serves diagnosis@production
# → cases from the usual device: monitor [OK] → cases from a new device (+8 % sizes): monitor
# [DRIFT] + e-mail → a retrained version that misses more cancers is stopped by the recall gate.
# Knobs: TRAFFIC (cases per batch).
source "$(dirname "$0")/../common.sh"
export MLOPS_LOCAL_PORT=${MLOPS_LOCAL_PORT:-4620}
TRAFFIC=${TRAFFIC:-300}
fresh_workdir

step "1. Train a calibrated classifier on the Wisconsin breast-cancer data"
"$PY" train.py

step "2. Register diagnosis@1.0.0 and read its model card"
mlops models register
mlops models card diagnosis@1.0.0

step "3. Promotion to production needs two approvals from the named physicians"
if mlops models promote diagnosis@1.0.0 --alias production; then
  echo "unexpected: promoted without approvals"; exit 1
fi
# Each physician approves under their own identity (on AWS: their credentials, as STS verifies
# them; on the local AWS: MLOPS_IDENTITY). Two approvals by one identity count once.
MLOPS_IDENTITY=dr-house mlops models approve diagnosis@1.0.0 --by dr-house --note "reviewed 40 held-out cases"
if mlops models promote diagnosis@1.0.0 --alias production; then
  echo "unexpected: promoted with one approval"; exit 1
fi
MLOPS_IDENTITY=dr-cuddy mlops models approve diagnosis@1.0.0 --by dr-cuddy --note "calibration plot checked"
mlops models promote diagnosis@1.0.0 --alias production

step "4. Deploy: the endpoint serves diagnosis@production"
mlops deploy
mlops invoke assess --input data/sample_request.json

step "5. Cases from the usual device, with biopsy results as feedback"
T0=$(utc); sleep 1
"$PY" traffic.py --rows "$TRAFFIC" --seed 7
T1=$(utc '+1 sec'); sleep 1
monitor_window diagnosis-drift "$T0" "$T1"

step "6. The clinic's new device measures sizes 8 % larger"
"$PY" traffic.py --rows "$TRAFFIC" --seed 8 --drift
T2=$(utc '+1 sec'); sleep 1
monitor_window diagnosis-drift "$T1" "$T2"
mlops mail list
mlops mail show 1

step "7. A retrained version with weaker regularisation misses more cancers: the recall gate stops it"
mlops retrain diagnosis --param c=0.5
if mlops deploy; then echo "unexpected: the recall gate let it through"; exit 1; fi
echo "nothing shipped; production still serves:"
mlops invoke assess --input data/sample_request.json | tail -n 8
mlops models history diagnosis --alias production
dashboard

step "Done. Working copy: $WORK"
echo "Stop the local AWS with: (cd $WORK && $MLOPS local stop)"
