"""Parity for models beyond scikit-learn: the beyond_sklearn example (an XGBoost and a LightGBM
classifier converted by `mlops build`, a logits-only model with a declared softmax output)
deployed to the embedded local AWS; what the gateway answers over HTTP equals what each
shipped function answers stand-alone under awslambdaric, and both equal the source models'
own labels and probabilities."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from framework import local
from framework.local import sandbox as sandbox_module
from tests.e2e.conftest import REPO, Project
from tests.ports import free_port_pair

from .conftest import REGION, Deployment, Loop, Shipped, _routes
from .events import http_api_event
from .test_parity import from_http, from_payload

pytestmark = pytest.mark.timeout(600)
EXAMPLE = REPO / "examples" / "beyond_sklearn"
LABELS = {"churn": ["stays", "churns"], "risk": ["low", "medium", "high"],
          "iris": ["setosa", "versicolor", "virginica"]}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory,
           machine_cache: None) -> Iterator[Deployment]:
    pytest.importorskip("onnxmltools")
    root = tmp_path_factory.mktemp("parity-models") / "beyond"
    shutil.copytree(EXAMPLE, root)
    home = root / ".mlops" / "local"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_PORT", str(free_port_pair()))
        mp.chdir(root)
        try:
            for args in (["build"], ["deploy"]):
                proc = subprocess.run([sys.executable, "-m", "framework.cli", *args], cwd=root,
                                      capture_output=True, text=True, timeout=600)
                assert proc.returncode == 0, proc.stderr
            aws = local.status(home)
            assert aws is not None
            conn = local.connection(aws, REGION)
            [api] = conn.client("apigatewayv2").get_apis()["Items"]
            yield Deployment(Project(root, {}), aws, api["ApiId"],
                             _routes(conn, api["ApiId"]), conn)
        finally:
            local.stop(home)


@pytest.fixture(scope="module")
def shipped_models(models: Deployment,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipped]:
    loop = Loop()
    patch = pytest.MonkeyPatch()
    patch.setattr(sandbox_module, "INIT_TIMEOUT_S", 60.0)
    out = Shipped(models, loop, tmp_path_factory.mktemp("shipped-models"))
    try:
        yield out
    finally:
        out.close()
        loop.close()
        patch.undo()


def instances(dep: Deployment, name: str) -> list[dict[str, float]]:
    body = json.loads((dep.project.root / "data" / f"{name}_request.json").read_text())
    return list(body["instances"])


def both(dep: Deployment, shipped: Shipped, method: str, path: str, route_key: str,
         body: Any) -> Any:
    raw = b"" if body is None else json.dumps(body).encode()
    headers = {"host": dep.host, "user-agent": "parity/1", "accept": "*/*"}
    if body is not None:
        headers |= {"content-type": "application/json", "content-length": str(len(raw))}
    over_http = from_http(dep.request(method, path, headers, raw))
    event = http_api_event(route_key=route_key, api_id=dep.api_id, method=method,
                           path=f"/{dep.api_id}{path}", headers=headers, body=raw)
    payload, _ = shipped.invoke(dep.routes[route_key], event)
    direct = from_payload(payload, event["requestContext"]["requestId"])
    assert over_http == direct
    return over_http


def expected(dep: Deployment, name: str, rows: list[dict[str, float]]) -> np.ndarray:
    """The source model's own probabilities."""
    x = np.asarray([list(r.values()) for r in rows], dtype=np.float32)
    if name == "iris":
        import onnxruntime as ort

        z = ort.InferenceSession(str(dep.project.root / "artifacts/iris.onnx")).run(
            ["logits"], {"input": x})[0]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))
    import joblib

    return np.asarray(joblib.load(dep.project.root / "artifacts" / f"{name}.joblib")
                      .predict_proba(x))


@pytest.mark.parametrize("name", sorted(LABELS))
def test_predictions_alike_and_the_source_models(name: str, models: Deployment,
                                                 shipped_models: Shipped) -> None:
    rows = instances(models, name)
    answer = both(models, shipped_models, "POST", f"/{name}/predict", f"POST /{name}/predict",
                  {"instances": rows})
    assert answer.status == 200, answer
    probs = expected(models, name, rows)
    assert answer.body["classes"] == LABELS[name]
    assert np.allclose(answer.body["probabilities"], probs, atol=1e-5)
    assert answer.body["predictions"] == [LABELS[name][i] for i in probs.argmax(axis=1)]


@pytest.mark.parametrize("name", sorted(LABELS))
def test_oip_answers_alike(name: str, models: Deployment, shipped_models: Shipped) -> None:
    rows = instances(models, name)
    data = [v for r in rows for v in r.values()]
    infer = both(models, shipped_models, "POST", f"/v2/models/{name}/infer",
                 f"POST /v2/models/{name}/infer",
                 {"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP64",
                              "data": data}]})
    assert infer.status == 200, infer
    # The answer's tensors are label and probabilities, answer_* where the graph has outputs
    # of those names (the boosted models' class indices and probabilities).
    label, probabilities = (("label", "probabilities") if name == "iris" else
                            ("answer_label", "answer_probabilities"))
    outputs = {o["name"]: o for o in infer.body["outputs"]}
    assert outputs[label]["datatype"] == "BYTES"
    assert set(outputs[label]["data"]) <= set(LABELS[name])
    assert outputs[probabilities]["shape"] == [len(rows), len(LABELS[name])]
    meta = both(models, shipped_models, "GET", f"/v2/models/{name}",
                f"GET /v2/models/{name}", None)
    assert [o["name"] for o in meta.body["outputs"]] == [label, probabilities]


def test_a_value_outside_the_contract_is_refused_alike(models: Deployment,
                                                       shipped_models: Shipped) -> None:
    row = {**instances(models, "risk")[0], "debt_ratio": 3.0}
    refused = both(models, shipped_models, "POST", "/risk/predict", "POST /risk/predict",
                   {"instances": [row]})
    assert refused.status == 422 and refused.body["details"][0]["field"] == "debt_ratio"
