"""The gates measure models beyond scikit-learn through their declared output: the example's
XGBoost, LightGBM and logits-only models are scored on their hold-outs through the runtime
(output transform included), with the figures the source models give on the same rows."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework.artifacts import build_metadata
from framework.config.loader import load_config
from framework.gates import evaluate
from framework.registry.build import build_model

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "beyond_sklearn"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, copied, its boosted models converted by `mlops build`."""
    pytest.importorskip("onnxmltools")
    root = tmp_path_factory.mktemp("beyond") / "example"
    shutil.copytree(EXAMPLE, root)
    config = load_config(root / "mlops.yaml").config
    for name in ("churn", "risk"):
        build_model(root, name, config.models[name])
    return root


def holdout(root: Path, name: str) -> tuple[np.ndarray, list[str]]:
    with (root / "data" / f"{name}_holdout.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = [r.pop("label") for r in rows]
    return np.asarray([[float(v) for v in r.values()] for r in rows], dtype=np.float32), labels


def measured(root: Path, name: str) -> dict[str, Any]:
    config = load_config(root / "mlops.yaml").config
    model = config.models[name]
    meta = build_metadata(name, model, root / model.artifact)
    results = evaluate(name, model, root, meta, None)
    assert all(r.passed for r in results), results
    return {r.gate: r.measured for r in results}


def test_the_xgboost_classifier_is_gated_on_its_labels(example: Path) -> None:
    import joblib

    x, truth = holdout(example, "churn")
    source = joblib.load(example / "artifacts" / "churn.joblib")
    predicted = np.where(source.predict_proba(x)[:, 1] >= 0.5, "churns", "stays")
    figures = measured(example, "churn")
    assert figures["accuracy"] == pytest.approx(float((predicted == truth).mean()), abs=1e-6)
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score([t == "churns" for t in truth], source.predict_proba(x)[:, 1])
    assert figures["roc_auc"] == pytest.approx(auc, abs=1e-4)


def test_the_lightgbm_classifier_is_gated_on_its_labels(example: Path) -> None:
    import joblib

    x, truth = holdout(example, "risk")
    source = joblib.load(example / "artifacts" / "risk.joblib")
    predicted = np.asarray(["low", "medium", "high"])[source.predict_proba(x).argmax(axis=1)]
    assert measured(example, "risk")["accuracy"] == pytest.approx(
        float((predicted == np.asarray(truth)).mean()), abs=1e-6)


def test_the_logits_only_model_is_gated_through_softmax(example: Path) -> None:
    import onnxruntime as ort

    x, truth = holdout(example, "iris")
    session = ort.InferenceSession(str(example / "artifacts" / "iris.onnx"))
    logits = session.run(["logits"], {"input": x})[0]
    predicted = np.asarray(["setosa", "versicolor", "virginica"])[logits.argmax(axis=1)]
    assert measured(example, "iris")["accuracy"] == pytest.approx(
        float((predicted == np.asarray(truth)).mean()), abs=1e-6)


def test_a_gate_the_model_misses_stops_it(example: Path) -> None:
    text = (example / "mlops.yaml").read_text().replace('gates: {accuracy: ">=0.9"}',
                                                        'gates: {accuracy: "<=0.5"}')
    strict = example / "strict.yaml"
    strict.write_text(text)
    model = load_config(strict).config.models["iris"]
    meta = build_metadata("iris", model, example / model.artifact)
    results = evaluate("iris", model, example, meta, None)
    assert [r.gate for r in results if not r.passed] == ["accuracy"]
