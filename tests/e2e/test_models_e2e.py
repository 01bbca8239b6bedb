"""Models beyond scikit-learn, end to end on the embedded local AWS: the example's XGBoost and
LightGBM models converted by `mlops build`, and its logits-only ONNX model, each deployed behind
an endpoint and answering labels and probabilities — the ones the source models give, through
the deployed zip and layer (onnxruntime's tree ensembles, the declared output's transform)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.conftest import REPO, http
from tests.ports import free_port_pair

EXAMPLE = REPO / "examples" / "beyond_sklearn"


def mlops(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "framework.cli", *args], cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mlops {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def deployed(tmp_path: Path, machine_cache: None,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    pytest.importorskip("onnxmltools")
    root = tmp_path / "beyond"
    shutil.copytree(EXAMPLE, root)
    for built in ("churn.onnx", "risk.onnx"):  # made here by mlops build
        (root / "artifacts" / built).unlink(missing_ok=True)
    monkeypatch.setenv("MLOPS_LOCAL_PORT", str(free_port_pair()))
    monkeypatch.chdir(root)
    build = mlops(root, "build")
    assert build.stdout.count("built ") == 2 and "parity max" in build.stdout
    mlops(root, "deploy")
    yield root
    from framework import local

    local.stop(root / ".mlops" / "local")


def rows(root: Path, name: str) -> list[dict[str, float]]:
    body: dict[str, Any] = json.loads((root / "data" / f"{name}_request.json").read_text())
    return list(body["instances"])


def ask(root: Path, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    url = mlops(root, "url", endpoint).stdout.strip()
    status, _, answer = http("POST", url, json.dumps(body).encode())
    assert status == 200, answer
    return dict(answer)


def test_boosted_and_logits_models_answer_labels_and_probabilities(deployed: Path) -> None:
    import joblib
    import onnxruntime as ort

    for name, labels in (("churn", ["stays", "churns"]), ("risk", ["low", "medium", "high"])):
        instances = rows(deployed, name)
        answer = ask(deployed, name, {"instances": instances})
        source = joblib.load(deployed / "artifacts" / f"{name}.joblib")
        x = np.asarray([list(r.values()) for r in instances], dtype=np.float32)
        expected = source.predict_proba(x)
        assert answer["classes"] == labels, name
        assert np.allclose(answer["probabilities"], expected, atol=1e-5), name
        assert answer["predictions"] == [labels[i] for i in expected.argmax(axis=1)], name
        assert answer["model"] == name and answer["version"] == "1.0.0"

    instances = rows(deployed, "iris")
    answer = ask(deployed, "iris", {"instances": instances})
    x = np.asarray([list(r.values()) for r in instances], dtype=np.float32)
    logits = ort.InferenceSession(str(deployed / "artifacts" / "iris.onnx")).run(
        ["logits"], {"input": x})[0]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = ["setosa", "versicolor", "virginica"]
    assert answer["classes"] == labels
    assert np.allclose(answer["probabilities"], probs, atol=1e-5)
    assert answer["predictions"] == [labels[i] for i in probs.argmax(axis=1)]

    # The Open Inference Protocol answers the same labels and probabilities.
    url = mlops(deployed, "url", "iris").stdout.strip()
    base = url.rsplit("/iris/predict", 1)[0]
    oip = {"inputs": [{"name": "input", "shape": [len(x), 4], "datatype": "FP32",
                       "data": x.reshape(-1).tolist()}]}
    status, _, infer = http("POST", f"{base}/v2/models/iris/infer", json.dumps(oip).encode())
    assert status == 200, infer
    outputs = {o["name"]: o for o in infer["outputs"]}
    assert outputs["label"]["data"] == answer["predictions"]
    assert outputs["label"]["datatype"] == "BYTES"
    assert np.allclose(np.asarray(outputs["probabilities"]["data"]).reshape(len(x), 3), probs,
                       atol=1e-5)

    # Values outside the declared contract are refused before the model runs.
    bad = {"instances": [{**rows(deployed, "risk")[0], "debt_ratio": 3.0}]}
    status, _, refused = http("POST", mlops(deployed, "url", "risk").stdout.strip(),
                              json.dumps(bad).encode())
    assert status == 422 and refused["details"][0]["field"] == "debt_ratio"
