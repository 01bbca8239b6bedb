"""A training entry point that learns from a CSV: the breast-cancer classifier of the example
(StandardScaler + LogisticRegression, exported to ONNX), trained on the rows of ``--data``
(the model's features, in order, and the label column). What a project whose training data
grows with production rows declares as ``training.command``.

    python train_csv.py --out DIR --data data/train.csv [--label diagnosis] [--seed 42]

``write_training_csv`` writes the example's training split (the rows ``train.py`` learns
from, with their labels) as such a CSV.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def write_training_csv(path: Path, label: str = "diagnosis", seed: int = 42) -> int:
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    names = [re.sub(r"[^A-Za-z0-9_]+", "_", n.strip()).strip("_") for n in data.feature_names]
    y = np.asarray(data.target_names)[data.target]
    x_train, _, y_train, _ = train_test_split(data.data, y, test_size=0.25, stratify=y,
                                              random_state=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*names, label])
        writer.writerows([*(repr(float(v)) for v in row), lab]
                         for row, lab in zip(x_train, y_train, strict=True))
    return len(y_train)


COMMAND = "python examples/breast_cancer/train.py --out {out} --seed {seed}"
CSV_COMMAND = "python train_csv.py --out {out} --data data/train.csv --seed {seed}"


def use_csv_training(root: Path) -> int:
    """Make the example project at ``root`` (its mlops.yaml) train with this script on
    ``data/train.csv``, declared as its training data; the CSV's row count."""
    import shutil

    shutil.copy(Path(__file__), root / "train_csv.py")
    rows = write_training_csv(root / "data" / "train.csv")
    path = root / "mlops.yaml"
    text = path.read_text()
    assert COMMAND in text, "the example's training command moved"
    path.write_text(text.replace(COMMAND, CSV_COMMAND).replace(
        "      metrics: artifacts/metrics.json\n",
        "      metrics: artifacts/metrics.json\n      data: data/train.csv\n", 1))
    return rows


def main(argv: list[str] | None = None) -> None:
    import numpy as np
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--label", default="diagnosis")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    with open(args.data, newline="") as fh:
        rows = list(csv.DictReader(fh))
    features = [c for c in rows[0] if c != args.label]
    x = np.asarray([[float(r[f]) for f in features] for r in rows], dtype=np.float64)
    y = np.asarray([r[args.label] for r in rows])
    clf = LogisticRegression(max_iter=1000, random_state=args.seed)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)]).fit(x, y)
    onx = convert_sklearn(pipe, name="breast_cancer_diagnosis",
                          initial_types=[("input", FloatTensorType([None, len(features)]))],
                          options={id(clf): {"zipmap": False}}, target_opset=TARGET_OPSET)
    art = args.out / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    (art / "model.onnx").write_bytes(onx.SerializeToString())
    (art / "metrics.json").write_text(json.dumps({"n_train": len(rows), "seed": args.seed}))
    print(f"trained on {len(rows)} rows of {args.data}")


if __name__ == "__main__":
    main()
