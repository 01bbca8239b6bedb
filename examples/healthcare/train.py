"""Train the calibrated diagnosis-support classifier and export it to ONNX.

    python train.py [--out DIR] [--seed 42] [--c 0.5] [--method sigmoid|isotonic]

scikit-learn's bundled Wisconsin breast-cancer data (569 cases, 30 measurements of cell
nuclei). A linear SVM separates the classes well but gives no probabilities; wrapped in
``CalibratedClassifierCV`` (5 folds) its scores become probabilities a clinician can read
("0.92 malignant" means about 92 of 100 such cases are). The Brier score and the expected
calibration error on the held-out quarter are recorded next to recall and ROC-AUC.

Writes, under DIR (default: this folder):
  artifacts/model.onnx      float input [N, 30]; labels "malignant" / "benign" + probabilities
  artifacts/metrics.json    recall, precision, ROC-AUC, Brier, ECE (+ ONNX parity)
  data/reference.csv        the training measurements (drift baseline)
  data/holdout.csv          held-out measurements + "diagnosis" (the gates' data)
  data/sample_request.json  a request with a benign and a malignant case
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import brier_score_loss, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

HERE = Path(__file__).resolve().parent
POSITIVE = "malignant"
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def feature_names() -> list[str]:
    return [re.sub(r"[^A-Za-z0-9_]+", "_", n.strip()) for n in load_breast_cancer().feature_names]


def cases() -> tuple[np.ndarray, np.ndarray]:
    """Measurements [569, 30] and diagnoses ("malignant" / "benign")."""
    data = load_breast_cancer()
    return data.data.astype(np.float64), np.asarray(data.target_names)[data.target]


def expected_calibration_error(truth: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(proba, edges[1:-1]), 0, bins - 1)
    return float(sum(abs(truth[which == b].mean() - proba[which == b].mean()) * np.mean(which == b)
                     for b in range(bins) if np.any(which == b)))


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--c", type=float, default=0.05, help="LinearSVC regularisation C")
    ap.add_argument("--method", default="sigmoid", choices=("sigmoid", "isotonic"))
    args = ap.parse_args(argv)

    names = feature_names()
    x, y = cases()
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y,
                                              random_state=args.seed)
    calibrated = CalibratedClassifierCV(LinearSVC(C=args.c, random_state=args.seed),
                                        method=args.method, cv=5)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", calibrated)])
    pipe.fit(x_tr, y_tr)
    classes = [str(c) for c in pipe.classes_]
    proba = pipe.predict_proba(x_te)[:, classes.index(POSITIVE)]
    pred = pipe.predict(x_te)
    truth = y_te == POSITIVE
    metrics = {
        "recall": round(float(recall_score(y_te, pred, pos_label=POSITIVE)), 4),
        "precision": round(float(precision_score(y_te, pred, pos_label=POSITIVE)), 4),
        "roc_auc": round(float(roc_auc_score(truth, proba)), 4),
        "brier": round(float(brier_score_loss(truth, proba)), 4),
        "ece": round(expected_calibration_error(truth, proba), 4),
    }

    onx = convert_sklearn(pipe, name="diagnosis_support",
                          initial_types=[("input", FloatTensorType([None, len(names)]))],
                          options={id(calibrated): {"zipmap": False}}, target_opset=TARGET_OPSET)
    model_bytes = onx.SerializeToString()
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    _, onnx_proba = session.run(None, {"input": x_te.astype(np.float32)})
    parity = float(np.max(np.abs(onnx_proba[:, classes.index(POSITIVE)] - proba)))
    print(f"parity: max |p_onnx - p_sklearn| = {parity:.2e}")
    assert parity < 1e-3, f"ONNX probabilities differ from scikit-learn by {parity}"

    art, dat = args.out / "artifacts", args.out / "data"
    art.mkdir(parents=True, exist_ok=True)
    dat.mkdir(parents=True, exist_ok=True)
    (art / "model.onnx").write_bytes(model_bytes)
    report = {**metrics, "positive_class": POSITIVE, "classes": classes, "n_train": len(y_tr),
              "n_test": len(y_te), "params": {"seed": args.seed, "c": args.c,
                                              "method": args.method},
              "onnx_parity_max_abs_diff": parity}
    (art / "metrics.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    write_csv(dat / "reference.csv", names, [[repr(float(v)) for v in r] for r in x_tr])
    write_csv(dat / "holdout.csv", [*names, "diagnosis"],
              [[*(repr(float(v)) for v in r), lab] for r, lab in zip(x_te, y_te, strict=True)])
    pick = [int(np.argmin(proba)), int(np.argmax(proba))]
    sample = {"instances": [dict(zip(names, map(float, x_te[i]), strict=True)) for i in pick]}
    (dat / "sample_request.json").write_text(json.dumps(sample, indent=2) + "\n")
    print("metrics:", json.dumps(metrics))
    print(f"wrote {art / 'model.onnx'} (sha256 {hashlib.sha256(model_bytes).hexdigest()[:16]}…)")
    return metrics


if __name__ == "__main__":
    main()
