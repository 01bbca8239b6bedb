#!/usr/bin/env bash
# Fraud detection, end to end on the embedded local AWS (no account, no Docker):
# train → deploy (gates) → ordinary traffic → monitor [OK] → card-testing wave → monitor
# [DRIFT] + e-mail → retrain on the new pattern → canary rollout under traffic → the new
# version catches the scheme. Knobs: ROWS (training transactions), TRAFFIC (payments per wave).
source "$(dirname "$0")/../common.sh"
export MLOPS_LOCAL_PORT=${MLOPS_LOCAL_PORT:-4610}
ROWS=${ROWS:-20000}
TRAFFIC=${TRAFFIC:-600}
fresh_workdir

step "1. Train on $ROWS synthetic transactions (~1.5 % fraud)"
"$PY" train.py --rows "$ROWS"

step "2. Deploy: gates (PR-AUC, precision, recall, latency, size), then the endpoint"
mlops deploy

step "3. Score two payments"
mlops invoke score --input data/sample_request.json

step "4. An ordinary day: $TRAFFIC payments and their chargeback labels"
T0=$(utc); sleep 1
"$PY" traffic.py --rows "$TRAFFIC" --seed 11
T1=$(utc '+1 sec'); sleep 1
monitor_window fraud-drift "$T0" "$T1"

step "5. A card-testing wave: tiny app payments at digital-goods merchants"
"$PY" traffic.py --rows "$TRAFFIC" --seed 12 --drift
T2=$(utc '+1 sec'); sleep 1
monitor_window fraud-drift "$T1" "$T2"
mlops mail list
mlops mail show 1

step "6. Retrain on data with the new scheme; canary rollout while payments keep coming"
start_traffic --rows 100 --seed 100
mlops retrain fraud-clf --param pattern=card_testing --deploy
stop_traffic
mlops rollout status

step "7. The same kind of wave against the new version"
"$PY" traffic.py --rows "$TRAFFIC" --seed 13 --drift
mlops models list
dashboard

step "Done. Working copy: $WORK"
echo "Endpoint, reports and e-mails stay up: cd $WORK && $MLOPS status | monitor report fraud-drift | mail list"
echo "Stop the local AWS with: (cd $WORK && $MLOPS local stop)"
