"""Train the breast-cancer diagnosis classifier and export it to ONNX.

    python examples/breast_cancer/train.py [--out DIR] [--seed 42] [--max-iter 1000]

Writes, under DIR (default: this folder):
  artifacts/model.onnx         StandardScaler + LogisticRegression, float input "input" [N, 30]
  artifacts/metrics.json       held-out accuracy, ROC-AUC, precision, recall (+ parity check)
  data/reference.csv           the training features (drift baseline)
  data/holdout.csv             held-out features + "diagnosis" label (the gates' data)
  data/sample_request.json     a real {"instances": [...]} body with two rows

Labels are the dataset's class names ("malignant", "benign"); metrics treat "malignant" as the
positive class. Uses only scikit-learn's bundled dataset: no network.
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
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

POSITIVE = "malignant"
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}  # pinned so the bytes don't move with skl2onnx defaults
HERE = Path(__file__).resolve().parent


def feature_name(raw: str) -> str:
    """'mean radius' -> 'mean_radius'."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", raw.strip()).strip("_")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="output folder (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=42, help="split and model seed")
    parser.add_argument("--max-iter", type=int, default=1000, help="LogisticRegression max_iter")
    args = parser.parse_args(argv)

    data = load_breast_cancer()
    names = [feature_name(n) for n in data.feature_names]
    x = data.data.astype(np.float64)
    y = np.asarray(data.target_names)[data.target]  # "malignant" / "benign"
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=args.seed
    )
    clf = LogisticRegression(max_iter=args.max_iter, random_state=args.seed)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)])
    pipe.fit(x_train, y_train)

    classes = list(pipe.classes_)
    proba = pipe.predict_proba(x_test)
    pred = pipe.predict(x_test)
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, pred)), 4),
        "roc_auc": round(
            float(roc_auc_score(y_test == POSITIVE, proba[:, classes.index(POSITIVE)])), 4
        ),
        "precision": round(float(precision_score(y_test, pred, pos_label=POSITIVE)), 4),
        "recall": round(float(recall_score(y_test, pred, pos_label=POSITIVE)), 4),
    }

    onx = convert_sklearn(
        pipe,
        name="breast_cancer_diagnosis",
        initial_types=[("input", FloatTensorType([None, len(names)]))],
        options={id(clf): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    model_bytes = onx.SerializeToString()

    # Parity: onnxruntime on float32 inputs vs scikit-learn on float64.
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    labels, onnx_proba = session.run(None, {"input": x_test.astype(np.float32)})
    parity = float(np.max(np.abs(onnx_proba - proba)))
    label_agreement = float(np.mean(labels == pred))
    print(f"parity: max |p_onnx - p_sklearn| = {parity:.2e}, label agreement {label_agreement:.4f}")
    assert parity < 1e-4, f"ONNX probabilities differ from scikit-learn by {parity}"

    art, dat = args.out / "artifacts", args.out / "data"
    art.mkdir(parents=True, exist_ok=True)
    dat.mkdir(parents=True, exist_ok=True)
    (art / "model.onnx").write_bytes(model_bytes)
    report = {
        **metrics,
        "positive_class": POSITIVE,
        "classes": classes,
        "n_train": len(y_train),
        "n_test": len(y_test),
        "seed": args.seed,
        "onnx_parity_max_abs_diff": parity,
    }
    (art / "metrics.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    with open(dat / "reference.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([[repr(float(v)) for v in row] for row in x_train])
    with open(dat / "holdout.csv", "w", newline="") as fh:  # for the gates in mlops.yaml
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*names, "diagnosis"])
        writer.writerows([*(repr(float(v)) for v in row), label]
                         for row, label in zip(x_test, y_test, strict=True))
    sample = {"instances": [dict(zip(names, map(float, row), strict=True)) for row in x_test[:2]]}
    (dat / "sample_request.json").write_text(json.dumps(sample, indent=2) + "\n")

    print("metrics:", json.dumps(metrics))
    print(f"wrote {art / 'model.onnx'} (sha256 {hashlib.sha256(model_bytes).hexdigest()})")
    return metrics


if __name__ == "__main__":
    main()
