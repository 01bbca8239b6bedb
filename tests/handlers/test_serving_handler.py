"""The inference handler's routes (OIP, OpenAPI, feedback, auth, capture) and a fuzz test:
whatever the body, headers or route, the answer is a JSON 2xx/4xx without internals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_inference_handler import CONTEXT, ROW, registry  # noqa: F401  (fixture)

import handlers.inference as inference
from framework.monitoring.columns import unpack
from framework.runtime import auth

ROUTE = "POST /tiny/predict"


def event(route_key: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
          request_id: str = "req-1") -> dict[str, Any]:
    method = route_key.split(" ", 1)[0]
    return {
        "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "h", **(headers or {})},
        "requestContext": {"http": {"method": method, "path": path}, "requestId": request_id,
                           "routeKey": route_key, "stage": "$default"},
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


@pytest.fixture
def served(registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
           ) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("MLOPS_ROUTE", ROUTE)
    monkeypatch.setenv("MLOPS_CAPTURE_SAMPLE_RATE", "1")
    monkeypatch.setenv("MLOPS_CAPTURE_SINK", "log")
    inference._cache.clear()
    yield registry


def captured(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The capture lines the handler logged (what the log group's subscription filter
    ``{ $.msg = "capture" }`` selects)."""
    lines = [unpack(json.loads(line)) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    return [r for r in lines if r.get("msg") == "capture"]


def call(ev: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    resp = inference.handler(ev, CONTEXT)
    return resp["statusCode"], json.loads(resp["body"]), resp


def test_native_predict_logs_capture_lines(served: dict[str, Any],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    status, body, resp = call(event(ROUTE, "/tiny/predict", {"instances": [ROW, ROW]}))
    assert status == 200 and body["request_id"] == "req-1"
    lines = captured(capsys)
    assert [r["row"] for r in lines] == [0, 1] and lines[0]["inputs"] == ROW
    assert {r["endpoint"] for r in lines} == {"predict"} and lines[0]["request_id"] == "req-1"
    assert resp["headers"]["x-mlops-request-id"] == "req-1"
    assert resp["headers"]["x-mlops-cold-start"] == "true"


def test_errors_are_not_captured(served: dict[str, Any],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    status, _, resp = call(event(ROUTE, "/tiny/predict", {"instances": [{"a": -1}]}))
    assert status == 422 and captured(capsys) == []
    assert "x-mlops-executed-version" in resp["headers"]


def test_oip_routes(served: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    status, meta, _ = call(event("GET /v2/models/predict", "/v2/models/predict"))
    assert status == 200 and meta["inputs"][0]["shape"] == [-1, 3]
    status, ready, _ = call(event("GET /v2/models/predict/ready", "/v2/models/predict/ready"))
    assert status == 200 and ready == {"name": "predict", "ready": True}
    body = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                        "data": list(ROW.values())}]}
    status, answer, resp = call(event("POST /v2/models/predict/infer",
                                      "/v2/models/predict/infer", body))
    assert status == 200 and answer["outputs"][0]["data"] == [0]
    assert len(captured(capsys)) == 1
    status, _, _ = call(event("GET /v2/models/predict/infer", "/v2/models/predict/infer"))
    assert status == 405


def test_openapi_route_names_the_server(served: dict[str, Any]) -> None:
    status, doc, _ = call(event("GET /tiny/predict/openapi.json",
                                "/api1/tiny/predict/openapi.json"))
    assert status == 200 and doc["servers"] == [{"url": "https://h/api1"}]


def test_feedback_is_logged_for_the_feedback_stream(served: dict[str, Any],
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    status, body, _ = call(event("POST /tiny/predict/feedback", "/tiny/predict/feedback",
                                 [{"request_id": "r9", "row": 0, "label": 1},
                                  {"request_id": "r8", "label": 0}]))
    assert status == 202 and body["accepted"] == 2
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if '"msg":"feedback"' in line]  # what the filter { $.msg = "feedback" } selects
    assert [(r["endpoint"], r["request_id"], r["row"], r["label"]) for r in lines] == [
        ("predict", "r9", 0, 1), ("predict", "r8", 0, 0)]
    assert all(r["time"].endswith("Z") for r in lines)
    s3 = boto3.client("s3", region_name="us-east-1")  # no S3 write on the request path
    assert not [o for o in s3.list_objects_v2(Bucket="reg-bucket").get("Contents", [])
                if o["Key"].startswith("feedback/")]
    # an endpoint that captures nothing has nothing to join labels to
    monkeypatch.setenv("MLOPS_CAPTURE_SINK", "off")
    inference._cache.clear()
    status, body, _ = call(event("POST /tiny/predict/feedback", "/tiny/predict/feedback",
                                 {"request_id": "r9", "label": 1}))
    assert status == 409 and body["error"] == "feedback_not_collected"
    assert "capture" in body["message"]


def test_api_key_auth(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("MLOPS_AUTH", "api_key")
    inference._cache.clear()
    new = auth.generate("predict")
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket="reg-bucket", Key=auth.key_object("predict", new.key_id),
        Body=json.dumps(new.record))
    ev = event(ROUTE, "/tiny/predict", {"instances": [ROW]})
    assert call(ev)[0] == 401
    ok = event(ROUTE, "/tiny/predict", {"instances": [ROW]}, {"x-api-key": new.key})
    assert call(ok)[0] == 200


def test_structured_log_line(served: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    call(event(ROUTE, "/tiny/predict", {"instances": [ROW]}))
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["msg"] == "request" and line["status"] == 200 and line["rows"] == 1
    assert line["cold_start"] is True and line["endpoint"] == "predict"


# -- fuzz ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
feature_keys = st.sampled_from(["a", "b", "c", "instances", "inputs", "name", "shape",
                                "datatype", "data", "request_id", "label", "row", "id"])
structured = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-1e3, 1e3) | st.sampled_from(
        ["FP32", "BYTES", "input", "a", "red"]),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(feature_keys, children, max_size=5),
    max_leaves=30,
)
bodies = st.one_of(
    json_values.map(json.dumps), structured.map(json.dumps),
    st.text(max_size=30), st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
)
routes = st.sampled_from([
    (ROUTE, "/tiny/predict"), ("GET /tiny/predict", "/tiny/predict"),
    ("POST /tiny/predict/feedback", "/tiny/predict/feedback"),
    ("GET /tiny/predict/openapi.json", "/tiny/predict/openapi.json"),
    ("POST /v2/models/predict/infer", "/v2/models/predict/infer"),
    ("GET /v2/models/predict", "/v2/models/predict"),
    ("GET /v2/models/predict/ready", "/v2/models/predict/ready"),
    ("PUT /v2/models/predict/other", "/v2/models/predict/other"),
])
content_types = st.sampled_from(["application/json", "text/plain", "application/x+json", ""])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=routes, body=bodies, content_type=content_types, b64=st.booleans())
def test_fuzz_never_5xx_never_leaks(served: dict[str, Any], route: tuple[str, str], body: str,
                                    content_type: str, b64: bool) -> None:
    ev = event(route[0], route[1], body, {"content-type": content_type} if content_type else {})
    ev["isBase64Encoded"] = b64
    resp = inference.handler(ev, CONTEXT)
    status = resp["statusCode"]
    text = resp["body"]
    assert status < 500, text
    assert "Traceback" not in text and "reg-bucket" not in text and "File \"" not in text
    payload = json.loads(text)
    if status >= 400:
        assert set(payload) >= {"error", "message"}
