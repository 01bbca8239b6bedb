"""Train the three models of the beyond-scikit-learn example.

    python examples/beyond_sklearn/train.py [--out DIR] [--seed 42]

Writes, under DIR (default: this folder):
  artifacts/churn.joblib       XGBoost XGBClassifier: will a customer leave? (binary)
  artifacts/risk.joblib        LightGBM LGBMClassifier: a loan's risk, low / medium / high
  artifacts/iris.onnx          a softmax regression on scikit-learn's iris data, exported the way
                               PyTorch exports a classifier: one "logits" output, no labels
  data/{churn,risk,iris}_reference.csv   training features (drift baselines)
  data/{churn,risk,iris}_holdout.csv     held-out features + "label" (the gates' data)
  data/{churn,risk,iris}_request.json    a real {"instances": [...]} body with two rows

`mlops build` then converts the two boosted models to ONNX (artifacts/churn.onnx,
artifacts/risk.onnx) with onnxmltools; mlops.yaml's `output:` turns each model's raw output
into labels and probabilities. Synthetic data for churn and risk (seeded), iris from
scikit-learn's bundled copy: no network.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHURN = ["tenure_months", "monthly_charges", "support_calls", "contract_months"]
RISK = ["income_k", "debt_ratio", "late_payments", "age"]
IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_LABELS = ["setosa", "versicolor", "virginica"]


def churn_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    tenure = rng.uniform(0, 72, n)
    charges = rng.uniform(20, 120, n)
    calls = rng.poisson(2.0, n).clip(0, 12).astype(float)
    contract = rng.choice([1.0, 12.0, 24.0], n, p=[0.5, 0.3, 0.2])
    score = -0.05 * tenure + 0.03 * charges + 0.5 * calls - 0.08 * contract - 1.0
    churns = rng.random(n) < 1 / (1 + np.exp(-score))
    x = np.column_stack([tenure, charges, calls, contract])
    return x, np.where(churns, "churns", "stays")


def risk_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    income = rng.uniform(10, 200, n)
    debt = rng.uniform(0, 1, n)
    late = rng.poisson(1.5, n).clip(0, 12).astype(float)
    age = rng.uniform(18, 90, n)
    score = 3 * debt + 0.6 * late - 0.015 * income - 0.01 * (age - 18) + rng.normal(0, 0.4, n)
    label = np.where(score < 0.5, "low", np.where(score < 2.0, "medium", "high"))
    return np.column_stack([income, debt, late, age]), label


def iris_logits_onnx(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[bytes, np.ndarray]:
    """A softmax regression fitted by gradient descent, exported as one MatMul + Add whose
    output is "logits" [N, 3] — what ``torch.onnx.export`` gives for ``nn.Linear(4, 3)``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    mean, std = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / std
    onehot = np.eye(3)[y]
    rng = np.random.default_rng(seed)
    w, b = rng.normal(0, 0.01, (4, 3)), np.zeros(3)
    for _ in range(2000):
        logits = z @ w + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) / len(z)
        w -= 0.5 * (z.T @ grad + 1e-3 * w)
        b -= 0.5 * grad.sum(axis=0)
    # Fold the standardization into the weights: logits = x @ W + B.
    weights = (w / std[:, None]).astype(np.float32)
    bias = (b - (mean / std) @ w).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "B"], ["logits"])],
        "iris_linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="examples/beyond_sklearn/train.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(), weights


def write_csv(path: Path, names: list[str], x: np.ndarray, y: np.ndarray | None) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(names + (["label"] if y is not None else []))
        for i, row in enumerate(x):
            cells = [f"{v:.4f}" for v in row]
            out.writerow(cells + ([str(y[i])] if y is not None else []))


def write_request(path: Path, names: list[str], x: np.ndarray) -> None:
    rows = [{n: round(float(v), 4) for n, v in zip(names, row, strict=True)} for row in x[:2]]
    path.write_text(json.dumps({"instances": rows}, indent=2) + "\n")


def split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    cut = int(n * 0.75)
    return order[:cut], order[cut:]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder")
    parser.add_argument("--seed", type=int, default=42, help="data and model seed")
    args = parser.parse_args(argv)
    import joblib
    from lightgbm import LGBMClassifier
    from sklearn.datasets import load_iris
    from xgboost import XGBClassifier

    rng = np.random.default_rng(args.seed)
    (args.out / "artifacts").mkdir(parents=True, exist_ok=True)
    (args.out / "data").mkdir(parents=True, exist_ok=True)
    scores: dict[str, float] = {}

    x, y = churn_data(rng, 2000)
    tr, te = split(len(x), rng)
    churn = XGBClassifier(n_estimators=40, max_depth=3, learning_rate=0.2,
                          random_state=args.seed, n_jobs=1)
    churn.fit(x[tr].astype(np.float32), (y[tr] == "churns").astype(int))
    joblib.dump(churn, args.out / "artifacts" / "churn.joblib")
    pred = np.where(churn.predict(x[te].astype(np.float32)) == 1, "churns", "stays")
    scores["churn_accuracy"] = float((pred == y[te]).mean())
    write_csv(args.out / "data" / "churn_reference.csv", CHURN, x[tr], None)
    write_csv(args.out / "data" / "churn_holdout.csv", CHURN, x[te], y[te])
    write_request(args.out / "data" / "churn_request.json", CHURN, x[te])

    x, y = risk_data(rng, 3000)
    tr, te = split(len(x), rng)
    codes = {"low": 0, "medium": 1, "high": 2}
    risk = LGBMClassifier(n_estimators=60, num_leaves=15, learning_rate=0.1,
                          random_state=args.seed, n_jobs=1, verbose=-1)
    risk.fit(x[tr].astype(np.float32), np.array([codes[v] for v in y[tr]]))
    joblib.dump(risk, args.out / "artifacts" / "risk.joblib")
    names = np.array(["low", "medium", "high"])
    scores["risk_accuracy"] = float((names[risk.predict(x[te].astype(np.float32))]
                                     == y[te]).mean())
    write_csv(args.out / "data" / "risk_reference.csv", RISK, x[tr], None)
    write_csv(args.out / "data" / "risk_holdout.csv", RISK, x[te], y[te])
    write_request(args.out / "data" / "risk_request.json", RISK, x[te])

    iris = load_iris()
    x, codes_iris = iris.data.astype(np.float64), iris.target
    tr, te = split(len(x), rng)
    onnx_bytes, _ = iris_logits_onnx(x[tr], codes_iris[tr], args.seed)
    (args.out / "artifacts" / "iris.onnx").write_bytes(onnx_bytes)
    y = np.asarray(IRIS_LABELS)[codes_iris]
    write_csv(args.out / "data" / "iris_reference.csv", IRIS, x[tr], None)
    write_csv(args.out / "data" / "iris_holdout.csv", IRIS, x[te], y[te])
    write_request(args.out / "data" / "iris_request.json", IRIS, x[te])
    (args.out / "artifacts" / "metrics.json").write_text(json.dumps(scores, indent=2) + "\n")
    print(json.dumps(scores))
    return scores


if __name__ == "__main__":
    main()
