"""The inference handler and the OIP binary tensor data extension, as API Gateway drives it: a
binary body arrives base64-encoded (``isBase64Encoded: true``) and a binary answer leaves
base64-encoded for API Gateway to decode; errors stay JSON."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from test_inference_handler import CONTEXT, registry  # noqa: F401  (fixture)
from tritonclient.http import InferenceServerClient, InferInput

import handlers.inference as inference

ROUTE = "POST /v2/models/predict/infer"


def _event(route: str, body: bytes, headers: dict[str, str], b64: bool = True,
           ) -> dict[str, Any]:
    method, _, path = route.partition(" ")
    return {"version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": "",
            "headers": headers,
            "requestContext": {"http": {"method": method, "path": path}, "requestId": "r1",
                               "routeKey": route, "stage": "$default"},
            "body": base64.b64encode(body).decode() if b64 else body.decode(),
            "isBase64Encoded": b64}


ROWS = [[1.0, 0.5, -0.25], [9.0, -2.0, 1.0]]  # exact in float32


def _request() -> tuple[bytes, dict[str, str]]:
    x = np.array(ROWS, dtype=np.float32)
    tensor = InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    body, size = InferenceServerClient.generate_request_body([tensor])
    return body, {"inference-header-content-length": str(size)}


def test_binary_in_base64_and_out(registry: dict[str, Any]) -> None:  # noqa: F811
    body, headers = _request()
    response = inference.handler(_event(ROUTE, body, headers), CONTEXT)
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is True
    out = response["headers"]
    assert out["content-type"] == "application/octet-stream"
    assert out["x-mlops-request-id"] == "r1"
    result = InferenceServerClient.parse_response_body(
        base64.b64decode(response["body"]),
        header_length=int(out["inference-header-content-length"]))
    assert result.get_response()["model_name"] == "predict"
    # the same rows as JSON through the native route give the same labels
    native = inference.handler(_event("POST /tiny/predict", json.dumps({"inputs": ROWS}).encode(),
                                      {"content-type": "application/json"}, b64=False), CONTEXT)
    assert result.as_numpy("label").tolist() == json.loads(native["body"])["predictions"]


def test_framing_errors_are_json_400(registry: dict[str, Any]) -> None:  # noqa: F811
    body, headers = _request()
    for bad_body, bad_headers in ((body, {"inference-header-content-length": "x"}),
                                  (body[:-4], headers), (body + b"\0", headers)):
        response = inference.handler(_event(ROUTE, bad_body, bad_headers), CONTEXT)
        assert response["statusCode"] == 400 and response["isBase64Encoded"] is False
        assert json.loads(response["body"])["error"] == "invalid_request"


def test_server_metadata_lists_the_extension(registry: dict[str, Any]) -> None:  # noqa: F811
    server = inference.handler(_event("GET /v2", b"", {}), CONTEXT)
    assert json.loads(server["body"])["extensions"] == ["binary_tensor_data"]
