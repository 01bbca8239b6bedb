"""Train the fraud classifier on synthetic transactions and export it to ONNX.

    python train.py [--out DIR] [--seed 42] [--rows 20000] [--trees 150] [--fraud-weight 4]
                    [--pattern none|card_testing]

A scikit-learn pipeline — one-hot encoding of the merchant category and channel (string
inputs), the numeric columns as they are, gradient-boosted trees — converted with skl2onnx
with one ONNX input per feature, named like the features in mlops.yaml (the runtime feeds
categories as strings). Fraud is weighted up (``--fraud-weight``) because it is rare.
``--pattern card_testing`` trains on data that includes the new card-testing scheme (what the
fraud team does after the monitor flags it).

Writes, under DIR (default: this folder):
  artifacts/model.onnx      inputs amount, merchant_category, ... ; labels "fraud" / "legit"
  artifacts/metrics.json    held-out PR-AUC, precision, recall, ROC-AUC (+ ONNX parity)
  data/reference.csv        the training features (drift baseline)
  data/holdout.csv          held-out features + "label" (the gates' data)
  data/sample_request.json  a request body with a legitimate and a fraudulent payment
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from transactions import CATEGORIES, CHANNELS, FEATURES, FRAUD, LABEL, NUMERIC, transactions

HERE = Path(__file__).resolve().parent
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
STRINGS = ("merchant_category", "channel")


def columns(records: list[dict[str, object]]) -> dict[str, np.ndarray]:
    """Per-feature [N, 1] arrays, as the ONNX model takes them."""
    out = {}
    for f in FEATURES:
        values = [r[f] for r in records]
        dtype = object if f in STRINGS else np.float32
        out[f] = np.asarray(values, dtype=dtype).reshape(-1, 1)
    return out


def frame(records: list[dict[str, object]]) -> np.ndarray:
    """An object array [N, 7] in feature order (no pandas needed)."""
    return np.asarray([[r[f] for f in FEATURES] for r in records], dtype=object)


def write_csv(path: Path, records: list[dict[str, object]], labels: list[str] | None) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*FEATURES, *([LABEL] if labels is not None else [])])
        for i, r in enumerate(records):
            writer.writerow([r[f] for f in FEATURES] + ([labels[i]] if labels is not None else []))


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--rows", type=int, default=20000, help="transactions generated")
    ap.add_argument("--trees", type=int, default=150, help="boosting rounds")
    ap.add_argument("--fraud-weight", type=float, default=4.0, help="sample weight of fraud")
    ap.add_argument("--pattern", default="none", help="none | card_testing (include the scheme)")
    args = ap.parse_args(argv)

    records, labels = transactions(args.rows, args.seed, pattern=args.pattern,
                                   fraud_rate=0.015 if args.pattern == "none" else 0.03)
    idx = np.arange(len(records))
    train_i, test_i = train_test_split(idx, test_size=0.25, stratify=labels,
                                       random_state=args.seed)
    tr = [records[i] for i in train_i]
    te = [records[i] for i in test_i]
    y_tr = np.asarray([labels[i] for i in train_i])
    y_te = np.asarray([labels[i] for i in test_i])

    encode = ColumnTransformer(
        [("onehot", OneHotEncoder(categories=[list(CATEGORIES), list(CHANNELS)],
                                  handle_unknown="ignore"), [FEATURES.index(f) for f in STRINGS]),
         ("numeric", "passthrough", [FEATURES.index(f) for f in NUMERIC])])
    clf = GradientBoostingClassifier(n_estimators=args.trees, max_depth=3, learning_rate=0.1,
                                     subsample=0.8, random_state=args.seed)
    pipe = Pipeline([("encode", encode), ("clf", clf)])
    pipe.fit(frame(tr), y_tr, clf__sample_weight=np.where(y_tr == FRAUD, args.fraud_weight, 1.0))

    classes = [str(c) for c in pipe.classes_]
    proba = pipe.predict_proba(frame(te))[:, classes.index(FRAUD)]
    pred = pipe.predict(frame(te))
    truth = y_te == FRAUD
    metrics = {
        "pr_auc": round(float(average_precision_score(truth, proba)), 4),
        "roc_auc": round(float(roc_auc_score(truth, proba)), 4),
        "precision": round(float(precision_score(y_te, pred, pos_label=FRAUD)), 4),
        "recall": round(float(recall_score(y_te, pred, pos_label=FRAUD)), 4),
    }

    initial = [(f, StringTensorType([None, 1]) if f in STRINGS else FloatTensorType([None, 1]))
               for f in FEATURES]
    onx = convert_sklearn(pipe, name="fraud_detection", initial_types=initial,
                          options={id(clf): {"zipmap": False}}, target_opset=TARGET_OPSET)
    model_bytes = onx.SerializeToString()
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    onnx_labels, onnx_proba = session.run(None, columns(te))
    parity = float(np.max(np.abs(onnx_proba[:, classes.index(FRAUD)] - proba)))
    print(f"parity: max |p_onnx - p_sklearn| = {parity:.2e}, "
          f"label agreement {float(np.mean(onnx_labels == pred)):.4f}")
    assert parity < 1e-4, f"ONNX probabilities differ from scikit-learn by {parity}"

    art, dat = args.out / "artifacts", args.out / "data"
    art.mkdir(parents=True, exist_ok=True)
    dat.mkdir(parents=True, exist_ok=True)
    (art / "model.onnx").write_bytes(model_bytes)
    report = {**metrics, "positive_class": FRAUD, "classes": classes, "n_train": len(tr),
              "n_test": len(te), "fraud_share": round(float(np.mean(np.asarray(labels) == FRAUD)),
                                                      4),
              "params": {"seed": args.seed, "rows": args.rows, "trees": args.trees,
                         "fraud_weight": args.fraud_weight, "pattern": args.pattern},
              "onnx_parity_max_abs_diff": parity}
    (art / "metrics.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    write_csv(dat / "reference.csv", tr, None)
    write_csv(dat / "holdout.csv", te, list(y_te))
    sample = [te[int(np.argmin(proba))], te[int(np.argmax(proba))]]
    (dat / "sample_request.json").write_text(json.dumps({"instances": sample}, indent=2) + "\n")
    print("metrics:", json.dumps(metrics))
    print(f"wrote {art / 'model.onnx'} (sha256 {hashlib.sha256(model_bytes).hexdigest()[:16]}…)")
    return metrics


if __name__ == "__main__":
    main()
