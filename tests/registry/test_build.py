"""`mlops build`: a scikit-learn pipeline becomes the declared ONNX artifact, with parity."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from framework.artifacts import check_artifact
from framework.config.loader import load_config
from framework.registry.build import build_model

REPO = Path(__file__).resolve().parents[2]


def project(tmp_path: Path, estimator: object, task: str = "classification") -> Path:
    joblib.dump(estimator, tmp_path / "est.joblib")
    text = (REPO / "mlops.yaml").read_text()
    text = re.sub(r"    artifact: [^\n]*\n", "    artifact: built/model.onnx\n"
                  "    source: est.joblib\n", text, count=1)
    text = text.replace("reference: examples/", f"reference: {REPO}/examples/")
    text = re.sub(r"    (gates|holdout): \{[^\n]*\}\n", "", text)
    text = text.replace("task: classification", f"task: {task}", 1)
    (tmp_path / "mlops.yaml").write_text(text)
    return tmp_path / "mlops.yaml"


def test_classifier_pipeline_is_converted_with_parity(tmp_path: Path) -> None:
    data = load_breast_cancer()
    est = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    est.fit(data.data, data.target)
    path = project(tmp_path, est)
    cfg = load_config(path).config
    report = build_model(tmp_path, "diagnosis", cfg.models["diagnosis"])
    assert (tmp_path / "built/model.onnx").is_file()
    assert report["parity"]["max_abs_diff"] <= cfg.models["diagnosis"].parity_tolerance
    assert report["parity"]["rows"] == 200
    assert check_artifact("diagnosis", cfg.models["diagnosis"], tmp_path) == []


def test_regressor_and_the_cli(tmp_path: Path) -> None:
    data = load_breast_cancer()
    est = Pipeline([("scale", StandardScaler()), ("reg", Ridge())])
    est.fit(data.data, data.data[:, 0] * 2.0)
    path = project(tmp_path, est, task="regression")
    proc = subprocess.run([sys.executable, "-m", "framework.cli", "build", "-f", str(path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "parity max |Δp|" in proc.stdout
    assert (tmp_path / "built/model.onnx").is_file()


def test_bad_parity_writes_nothing(tmp_path: Path) -> None:
    from framework.errors import MlopsError

    data = load_breast_cancer()
    est = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    est.fit(data.data, data.target)
    path = project(tmp_path, est)
    path.write_text(path.read_text().replace("    source: est.joblib\n",
                                             "    source: est.joblib\n"
                                             "    parity_tolerance: 1.0e-12\n"))
    cfg = load_config(path).config
    with pytest.raises(MlopsError, match="nothing written"):
        build_model(tmp_path, "diagnosis", cfg.models["diagnosis"])
    assert not (tmp_path / "built/model.onnx").exists()
