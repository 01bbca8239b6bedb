"""Train the demand forecaster on the stores' sales history and export it to ONNX.

    python train.py [--out DIR] [--history data/sales.csv] [--seed 42] [--trees 300]
                    [--depth 3] [--rate 0.05]

The history is ``data/sales.csv`` (one row per store and day; created with January–September
2025 on the first run). Days whose day of the month is a multiple of 5 are held out — the same
days in every retraining, so the gates' hold-out never leaks into training. The model is
gradient-boosted trees on one float input [N, 6]: the runtime encodes ``store`` as its index in
the declared values (the other way to carry categories: see ``framework/runtime/encoding.py``).

Writes, under DIR (default: this folder):
  artifacts/model.onnx      float input [N, 6] → predicted units
  artifacts/metrics.json    hold-out RMSE, MAE, R² and the history's date range
  data/holdout.csv          held-out days + "units" (the gates' data)
  data/sample_request.json  two store-days
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from sales import FEATURES, HISTORY, LABEL, STORES, append, history, read
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

HERE = Path(__file__).resolve().parent
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def matrix(rows: list[dict[str, str]]) -> np.ndarray:
    """Rows in feature order, store as its index in STORES (what the runtime feeds)."""
    return np.asarray([[STORES.index(r["store"]) if f == "store" else float(r[f])
                        for f in FEATURES] for r in rows], dtype=np.float32)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--history", type=Path, default=Path("data/sales.csv"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--rate", type=float, default=0.05)
    args = ap.parse_args(argv)

    if not args.history.exists():  # first run: the chain's history so far
        args.history.parent.mkdir(parents=True, exist_ok=True)
        append(args.history, history(*HISTORY))
    rows = read(args.history)
    held = [r for r in rows if int(r["date"][8:10]) % 5 == 0]
    train = [r for r in rows if int(r["date"][8:10]) % 5 != 0]
    y_tr = np.asarray([float(r[LABEL]) for r in train])
    y_te = np.asarray([float(r[LABEL]) for r in held])
    model = GradientBoostingRegressor(n_estimators=args.trees, max_depth=args.depth,
                                      learning_rate=args.rate, random_state=args.seed)
    model.fit(matrix(train), y_tr)
    pred = model.predict(matrix(held))
    metrics = {"rmse": round(float(np.sqrt(mean_squared_error(y_te, pred))), 3),
               "mae": round(float(mean_absolute_error(y_te, pred)), 3),
               "r2": round(float(r2_score(y_te, pred)), 4)}

    onx = convert_sklearn(model, name="demand_forecast",
                          initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
                          target_opset=TARGET_OPSET)
    model_bytes = onx.SerializeToString()
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (onnx_pred,) = session.run(None, {"input": matrix(held)})
    parity = float(np.max(np.abs(onnx_pred.ravel() - pred)))
    print(f"parity: max |onnx - sklearn| = {parity:.2e} units")
    assert parity < 1e-2, f"ONNX predictions differ from scikit-learn by {parity}"

    art, dat = args.out / "artifacts", args.out / "data"
    art.mkdir(parents=True, exist_ok=True)
    dat.mkdir(parents=True, exist_ok=True)
    (art / "model.onnx").write_bytes(model_bytes)
    dates = sorted(r["date"] for r in rows)
    report = {**metrics, "n_train": len(train), "n_holdout": len(held),
              "history": f"{dates[0]}..{dates[-1]}",
              "params": {"seed": args.seed, "trees": args.trees, "depth": args.depth,
                         "rate": args.rate}, "onnx_parity_max_abs_diff": parity}
    (art / "metrics.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    with open(dat / "holdout.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*FEATURES, LABEL])
        writer.writerows([[r[f] for f in (*FEATURES, LABEL)] for r in held])
    sample = [{f: r[f] if f == "store" else float(r[f]) if f in ("price", "temperature")
               else int(r[f]) for f in FEATURES} for r in held[:2]]
    (dat / "sample_request.json").write_text(json.dumps({"instances": sample}, indent=2) + "\n")
    print(f"history {report['history']}, {len(train)} training rows; metrics:",
          json.dumps(metrics))
    print(f"wrote {art / 'model.onnx'} (sha256 {hashlib.sha256(model_bytes).hexdigest()[:16]}…)")
    return metrics


if __name__ == "__main__":
    main()
