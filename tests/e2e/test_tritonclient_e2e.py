"""Triton's own HTTP client against a deployed endpoint on the embedded local AWS: its probes,
its metadata call and ``infer`` with its defaults (binary tensor data in and out, framed by
``Inference-Header-Content-Length``, carried base64 through the gateway as API Gateway does)
and with JSON data; every answer equals the native route's predictions."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np
import pytest
from tritonclient.http import (
    InferenceServerClient,
    InferInput,
    InferRequestedOutput,
)
from tritonclient.utils import InferenceServerException

from .conftest import Project, http
from .test_serving_e2e import _deploy

pytestmark = pytest.mark.timeout(300)


def _rows(project: Project) -> tuple[list[str], list[list[float]]]:
    instances = json.loads(project.sample())["instances"]
    names = list(instances[0])
    return names, [[float(r[n]) for n in names] for r in instances]


def test_tritonclient_binary_and_json(project: Project) -> None:
    d = _deploy(project)
    names, rows = _rows(project)
    status, _, native = http("POST", d.url, json.dumps({"instances": [
        dict(zip(names, r, strict=True)) for r in rows]}).encode())
    assert status == 200, native

    client = InferenceServerClient(d.base.split("://", 1)[1])  # host:port/<api id>
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("predict")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    meta = client.get_model_metadata("predict")
    assert meta["versions"] == ["1.0.0"]
    [tensor] = meta["inputs"]
    assert (tensor["datatype"], tensor["shape"]) == ("FP32", [-1, len(names)])
    label, proba = (o["name"] for o in meta["outputs"])

    x = np.array(rows, dtype=np.float32)
    # defaults: binary input, binary outputs (binary_data_output: true)
    inp = InferInput(tensor["name"], list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("predict", [inp], request_id="t1")
    header = result.get_response()
    assert header["id"] == "t1" and header["model_name"] == "predict"
    assert all("data" not in o and o["parameters"]["binary_data_size"] > 0
               for o in header["outputs"])
    assert [v.decode() for v in result.as_numpy(label)] == native["predictions"]
    assert result.as_numpy(proba).tolist() == native["probabilities"]

    # JSON in and out
    inp.set_data_from_numpy(x, binary_data=False)
    outputs = [InferRequestedOutput(label, binary_data=False),
               InferRequestedOutput(proba, binary_data=False)]
    result = client.infer("predict", [inp], outputs=outputs)
    assert result.get_response()["outputs"][0]["data"] == native["predictions"]
    assert result.as_numpy(proba).tolist() == native["probabilities"]

    # mixed: JSON input, one binary output
    result = client.infer("predict", [inp], outputs=[InferRequestedOutput(proba)])
    [only] = result.get_response()["outputs"]
    assert only["name"] == proba and "data" not in only
    assert result.as_numpy(proba).tolist() == native["probabilities"]

    # a value the model's float32 input cannot hold, sent as FP64 binary data: 422
    wide = x.astype(np.float64)
    wide[1, 3] = 1e39
    bad = InferInput(tensor["name"], list(wide.shape), "FP64")
    bad.set_data_from_numpy(wide)
    with pytest.raises(InferenceServerException) as info:
        client.infer("predict", [bad])
    assert info.value.status() == "422"
    client.close()

    # the same binary request with an explicit binary content type (base64 in the event)
    inp.set_data_from_numpy(x)
    body, json_size = InferenceServerClient.generate_request_body([inp])
    assert json_size is not None
    status, headers, answer = _post(d.v2("/infer"), body, {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(json_size)})
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    length = int(headers["inference-header-content-length"])
    parsed = InferenceServerClient.parse_response_body(answer, header_length=length)
    assert [v.decode() for v in parsed.as_numpy(label)] == native["predictions"]

    # a size that does not add up: 400 naming the input, as JSON
    status, headers, answer = _post(d.v2("/infer"), body[:-4], {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(json_size)})
    error = json.loads(answer)
    assert status == 400 and headers["content-type"] == "application/json"
    assert f"input '{tensor['name']}'" in error["message"], error


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
