"""The deployment hook's checks (``framework.rollout.pretraffic``), on the example's real ONNX
model through the runtime's model bundle: the hold-out rows through the new version, its
metric gates (absolute and against the version serving), a model that crashes on one row,
output drift against scipy's tests, and what it reads of a deployment."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from framework.artifacts import build_metadata
from framework.config.loader import load_config
from framework.rollout.pretraffic import (
    CheckFailedError,
    appspec_versions,
    chi2_p,
    judge,
    ks_p,
    metrics,
    output_drift,
    predict,
    read_holdout,
)
from framework.runtime.inference import ModelBundle
from tests.e2e.badmodels import crashing

REPO = Path(__file__).resolve().parents[2]
FEATURES: list[str] = []


def bundle(path: Path) -> ModelBundle:
    loaded = load_config(REPO / "mlops.yaml")
    model = loaded.config.models["diagnosis"]
    FEATURES[:] = [f.name for f in model.features]
    meta: dict[str, Any] = dict(build_metadata("diagnosis", model, path))
    raw = path.read_bytes()
    meta["sha256"] = hashlib.sha256(raw).hexdigest()
    return ModelBundle.from_bytes(meta, raw, meta["sha256"])


def holdout() -> tuple[list[dict[str, Any]], list[str]]:
    return read_holdout((REPO / "examples/breast_cancer/data/holdout.csv").read_bytes(),
                        "diagnosis")


def gate(text: str, op: str, value: float = 0.0, *, offset: float = 0.0,
         factor: float = 1.0, relative: bool = False) -> dict[str, Any]:
    return {"text": text, "op": op, "value": value, "offset": offset, "factor": factor,
            "relative": relative}


@pytest.fixture(scope="module")
def example() -> ModelBundle:
    path = REPO / "examples/breast_cancer/artifacts/model.onnx"
    if not path.exists():
        pytest.skip("train the example first: python examples/breast_cancer/train.py")
    return bundle(path)


def test_the_new_versions_gates_on_the_holdout(example: ModelBundle) -> None:
    rows, labels = holdout()
    predicted, probabilities, classes = predict(example, rows, FEATURES)
    assert len(predicted) == len(rows) == len(probabilities)
    measured = metrics("classification", labels, predicted, probabilities, classes, "malignant")
    assert measured["roc_auc"] is not None and measured["roc_auc"] > 0.97
    judged = judge({"roc_auc": gate(">=0.97", ">=", 0.97),
                    "recall": gate(">=0.999", ">=", 0.999),
                    "pr_auc": gate(">=0.9", ">=", 0.9)},  # the deploy checked it, not the hook
                   measured, None)
    assert [(r["gate"], r["passed"]) for r in judged] == [("recall", False), ("roc_auc", True)]
    assert judged[0]["detail"].startswith(f"{measured['recall']:.4g} >= 0.999")
    # Relative to the version serving: its figure on the same rows.
    relative = {"roc_auc": gate(">= champion - 0.01", ">=", relative=True, offset=-0.01)}
    champion = {"roc_auc": float(measured["roc_auc"]) + 0.05}
    (worse,) = judge(relative, measured, champion)
    assert worse["passed"] is False and worse["bound"] == pytest.approx(champion["roc_auc"] - 0.01)
    (first,) = judge(relative, measured, None)
    assert first["passed"] and "nothing to compare" in first["detail"]


def test_a_model_that_crashes_on_one_row_fails_the_check(tmp_path: Path,
                                                         example: ModelBundle) -> None:
    broken = tmp_path / "model.onnx"
    crashing(REPO / "examples/breast_cancer/artifacts/model.onnx", broken)
    rows, _ = holdout()
    with pytest.raises(CheckFailedError, match="failed on hold-out rows 1-1"):
        predict(bundle(broken), rows, FEATURES)


def test_output_drift_as_scipy_tests_it() -> None:
    rng = np.random.default_rng(1)
    for table in ([[30, 20], [25, 25]], [[100, 3, 5], [60, 40, 9]], [[5, 5], [5, 5]]):
        expected = stats.chi2_contingency(table, correction=False).pvalue
        assert chi2_p(table) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    a, b = rng.normal(size=300), rng.normal(loc=0.3, size=250)
    assert ks_p(list(a), list(b)) == pytest.approx(stats.ks_2samp(a, b, method="asymp").pvalue,
                                                   rel=0.1)
    mix = list(rng.choice(["benign", "malignant"], size=200, p=[0.6, 0.4]))
    same = list(rng.choice(["benign", "malignant"], size=200, p=[0.6, 0.4]))
    assert output_drift(mix, same)[0] is False
    assert output_drift(mix, ["benign"] * 200)[0] is True
    assert output_drift(mix, ["benign"] * 5)[0] is None  # too few to judge
    nums = list(rng.normal(size=300))
    assert output_drift(nums, list(rng.normal(size=300)))[0] is False
    assert output_drift(nums, list(rng.normal(loc=1.0, size=300)))[0] is True


def test_what_the_hook_reads_of_a_deployment() -> None:
    spec = {"version": 0.0, "Resources": [{"fn": {"Type": "AWS::Lambda::Function",
                                                  "Properties": {
                                                      "Name": "fn", "Alias": "live",
                                                      "CurrentVersion": "3",
                                                      "TargetVersion": "4"}}}]}
    info = {"revision": {"revisionType": "AppSpecContent",
                         "appSpecContent": {"content": json.dumps(spec)}}}
    assert appspec_versions(info) == {"Name": "fn", "Alias": "live", "CurrentVersion": "3",
                                      "TargetVersion": "4"}
    with pytest.raises(CheckFailedError, match="no 'label' column"):
        read_holdout(b"a,b\n1,2\n", "label")
    rows, labels = read_holdout(b"a,b,label\n1,x,yes\n2.5,,no\n", "label")
    assert rows == [{"a": 1, "b": "x"}, {"a": 2.5, "b": None}] and labels == ["yes", "no"]
