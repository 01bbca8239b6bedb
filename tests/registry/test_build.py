"""`mlops build`: a scikit-learn pipeline becomes the declared ONNX artifact, with parity."""

from __future__ import annotations

import re
import shutil
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
    # The reference data is read from inside the project (paths may not leave it).
    data = tmp_path / "examples/breast_cancer/data"
    data.mkdir(parents=True)
    shutil.copy(REPO / "examples/breast_cancer/data/reference.csv", data / "reference.csv")
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


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_boosted_classifiers_are_converted_and_served_with_labels(tmp_path: Path,
                                                                  kind: str) -> None:
    """XGBoost and LightGBM through onnxmltools: probabilities within the parity tolerance of
    the model's own, and with `output:` naming the columns, the runtime answers the labels."""
    pytest.importorskip(kind)
    pytest.importorskip("onnxmltools")
    import numpy as np

    from framework.runtime.inference import ModelBundle

    data = load_breast_cancer()
    if kind == "xgboost":
        from xgboost import XGBClassifier

        est: object = XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1, random_state=0)
    else:
        from lightgbm import LGBMClassifier

        est = LGBMClassifier(n_estimators=20, num_leaves=7, n_jobs=1, random_state=0,
                             verbose=-1)
    est.fit(data.data.astype(np.float32), data.target)  # type: ignore[attr-defined]
    path = project(tmp_path, est)
    path.write_text(path.read_text().replace(
        "    source: est.joblib\n", "    source: est.joblib\n"
        "    output: {tensor: probabilities, labels: [malignant, benign]}\n"))
    model = load_config(path).config.models["diagnosis"]
    report = build_model(tmp_path, "diagnosis", model)
    assert report["converter"] == f"onnxmltools ({kind})"
    assert report["versions"][kind] and report["versions"]["onnxmltools"]
    assert report["parity"]["max_abs_diff"] <= 1e-4
    assert check_artifact("diagnosis", model, tmp_path) == []

    from framework.artifacts import build_metadata

    artifact = tmp_path / "built/model.onnx"
    meta = build_metadata("diagnosis", model, artifact)
    assert meta["classes"] == ["malignant", "benign"] and meta["output"]["tensor"]
    served = ModelBundle.from_bytes(meta, artifact.read_bytes(), meta["sha256"])
    rows = data.data[:5].astype(np.float32)
    answer = served.predict({"inputs": rows.tolist()})
    expected = est.predict_proba(rows)  # type: ignore[attr-defined]
    assert np.allclose(answer["probabilities"], expected, atol=1e-5)
    assert answer["predictions"] == [["malignant", "benign"][i]
                                     for i in expected.argmax(axis=1)]


def test_a_boosted_regressor_and_a_pipeline_around_one(tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    from xgboost import XGBRegressor

    from framework.registry.errors import RegistryInputError

    data = load_breast_cancer()
    reg = XGBRegressor(n_estimators=10, max_depth=2, n_jobs=1)
    reg.fit(data.data.astype("float32"), data.data[:, 0] * 2.0)
    path = project(tmp_path, reg, task="regression")
    report = build_model(tmp_path, "diagnosis", load_config(path).config.models["diagnosis"])
    assert report["parity"]["compared"] == "predictions"
    piped = Pipeline([("scale", StandardScaler()), ("reg", XGBRegressor(n_estimators=2))])
    piped.fit(data.data, data.data[:, 0])
    other = tmp_path / "p"
    other.mkdir()
    path = project(other, piped, task="regression")
    with pytest.raises(RegistryInputError, match="pipeline ending in a xgboost model"):
        build_model(other, "diagnosis", load_config(path).config.models["diagnosis"])


def test_a_declared_output_is_checked_against_the_graph_at_validate(tmp_path: Path) -> None:
    data = load_breast_cancer()
    est = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    est.fit(data.data, data.target)
    path = project(tmp_path, est)
    build_model(tmp_path, "diagnosis", load_config(path).config.models["diagnosis"])
    path.write_text(path.read_text().replace(
        "    source: est.joblib\n", "    source: est.joblib\n"
        "    output: {tensor: probabilities, labels: [a, b, c]}\n"))
    problems = check_artifact("diagnosis", load_config(path).config.models["diagnosis"],
                              tmp_path)
    assert [p.where for p in problems] == ["models.diagnosis.output"]
    assert "2 probabilities per row but 3 labels" in problems[0].what
    proc = subprocess.run([sys.executable, "-m", "framework.cli", "validate", "-f", str(path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "models.diagnosis.output" in proc.stderr
    assert "Traceback" not in proc.stderr
