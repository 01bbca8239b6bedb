#!/usr/bin/env bash
# Demand forecasting, end to end on the embedded local AWS (no account, no Docker):
# train on January–September → deploy (RMSE/MAE gates) → back-test traffic: monitor [OK] →
# the holiday season arrives: monitor [DRIFT] + e-mail + a retrain request → `mlops retrain
# --pending --deploy` learns from the recorded holiday sales → canary rollout under traffic →
# the new version's forecasts. Knobs: TRAFFIC (store-days per batch).
source "$(dirname "$0")/../common.sh"
export MLOPS_LOCAL_PORT=${MLOPS_LOCAL_PORT:-4630}
TRAFFIC=${TRAFFIC:-250}
fresh_workdir

step "1. Train on the sales history (January-September 2025, five stores)"
"$PY" train.py

step "2. Deploy: gates (RMSE, MAE, R², latency), then the endpoint"
mlops deploy
mlops invoke forecast --input data/sample_request.json

step "3. Back-test traffic over the months the model knows, with the actual sales"
T0=$(utc); sleep 1
"$PY" traffic.py --rows "$TRAFFIC" --seed 3
T1=$(utc '+1 sec'); sleep 1
monitor_window demand-drift "$T0" "$T1"

step "4. The holiday season: forecasts for November-December; actuals land in data/sales.csv"
"$PY" traffic.py --rows "$TRAFFIC" --seed 4 --drift --record
T2=$(utc '+1 sec'); sleep 1
monitor_window demand-drift "$T1" "$T2"
mlops mail show 1

step "5. The monitor asked for a retraining: run it, ship it by canary while forecasts keep coming"
start_traffic --rows 50 --seed 100 --drift
mlops retrain --pending --deploy
stop_traffic
mlops rollout status
mlops models lineage demand@1.0.1

step "6. Holiday forecasts from the retrained version"
"$PY" traffic.py --rows "$TRAFFIC" --seed 5 --drift
mlops retrain --pending          # nothing left to do
dashboard

step "Done. Working copy: $WORK"
echo "Stop the local AWS with: (cd $WORK && $MLOPS local stop)"
