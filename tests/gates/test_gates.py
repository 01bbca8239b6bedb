"""Gates measure the version that would ship: metrics on hold-out data, size, contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from framework.artifacts import build_metadata
from framework.config.loader import load_config
from framework.gates import (
    GateFailedError,
    average_precision,
    check_threshold,
    compatibility,
    contract_breaks,
    evaluate,
)

REPO = Path(__file__).resolve().parents[2]


def feature(name: str, type_: str = "float", **extra: object) -> dict[str, object]:
    return {"name": name, "type": type_, **extra}


def test_average_precision_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        truth = rng.random(200) < 0.3
        scores = np.round(rng.random(200) + truth * 0.3, 2)  # rounded: many ties
        ours = average_precision(list(truth), list(scores))
        assert ours == pytest.approx(average_precision_score(truth, scores), abs=1e-12)


def test_thresholds() -> None:
    assert check_threshold("recall", ">=0.9", 0.95).passed
    assert not check_threshold("recall", ">=0.9", 0.85).passed
    assert check_threshold("p99_latency_ms", "<=50", 12.0).passed
    missing = check_threshold("roc_auc", ">=0.9", None)
    assert not missing.passed and "could not be measured" in missing.detail


def test_contract_breaks() -> None:
    old = {"task": "classification", "features": [
        feature("a"), feature("b"), feature("c", "category", values=["x", "y"])]}
    new = {"task": "classification", "features": [
        feature("a", "int"), feature("c", "category", values=["x"]), feature("d"),
        feature("e", nullable=True)]}
    assert contract_breaks(old, new) == [
        "feature 'a' changed type float → int",
        "feature 'b' was removed",
        "feature 'c' no longer accepts y",
        "feature 'd' is new and required",
    ]
    assert contract_breaks(old, old) == []
    ranged = {"features": [feature("x", min=0, max=10, nullable=True)]}
    narrowed = {"features": [feature("x", min=1, max=5)]}
    assert contract_breaks(ranged, narrowed) == [
        "feature 'x' min narrowed 0 → 1", "feature 'x' max narrowed 10 → 5",
        "feature 'x' no longer accepts missing values"]
    assert contract_breaks(narrowed, ranged) == []  # widening breaks nobody


def test_breaking_change_needs_a_major_bump() -> None:
    old = {"version": "1.4.0", "features": [feature("a"), feature("b")]}
    minor = {"version": "1.5.0", "features": [feature("a")]}
    major = {"version": "2.0.0", "features": [feature("a")]}
    assert not compatibility(old, minor).passed
    assert "without a major version bump" in compatibility(old, minor).detail
    assert compatibility(old, major).passed
    assert compatibility(None, minor).passed


def _example(tmp_path: Path, gates: str) -> tuple[object, Path]:
    declared = re.sub(r"    gates: \{[^\n]*\}\n", "", (REPO / "mlops.yaml").read_text())
    declared = re.sub(r"    holdout: \{[^\n]*\}\n", "", declared)
    text = declared.replace(
        "    task: classification",
        "    task: classification\n"
        "    holdout: {path: examples/breast_cancer/data/holdout.csv, label: diagnosis,"
        " positive: malignant}\n"
        f"    gates: {gates}", 1)
    path = tmp_path / "mlops.yaml"
    (tmp_path / "examples").symlink_to(REPO / "examples")  # paths stay inside the project
    path.write_text(text)
    return load_config(path).config, tmp_path


def test_metric_gates_are_measured_on_the_holdout(tmp_path: Path) -> None:
    config, root = _example(tmp_path, "{roc_auc: '>=0.95', recall: '>=0.999', size_mb: '<=1'}")
    model = config.models["diagnosis"]
    meta = build_metadata("diagnosis", model, root / model.artifact)
    results = {r.gate: r for r in evaluate("diagnosis", model, root, meta, previous=None)}
    recorded = json.loads((REPO / "examples/breast_cancer/artifacts/metrics.json").read_text())
    assert results["roc_auc"].passed
    assert results["roc_auc"].measured == pytest.approx(recorded["roc_auc"], abs=2e-3)
    assert not results["recall"].passed  # 0.92 on this split: the gate catches it
    assert results["recall"].measured == pytest.approx(recorded["recall"], abs=2e-3)
    assert results["size_mb"].passed and results["schema"].passed
    error = GateFailedError("diagnosis", "1.0.0", list(results.values()))
    assert error.exit_code == 5 and "recall" in error.render()


def test_metric_gates_without_holdout_are_a_config_error(tmp_path: Path) -> None:
    from framework.errors import ConfigError

    path = tmp_path / "mlops.yaml"
    declared = re.sub(r"    (gates|holdout): \{[^\n]*\}\n", "", (REPO / "mlops.yaml").read_text())
    path.write_text(declared.replace(
        "    task: classification", "    task: classification\n    gates: {recall: '>=0.9'}", 1))
    with pytest.raises(ConfigError, match="holdout"):
        load_config(path)
