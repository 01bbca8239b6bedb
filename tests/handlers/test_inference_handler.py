from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from moto import mock_aws
from tinymodels import tensor_classifier

import handlers.inference as inference

BUCKET = "reg-bucket"
ROW = {"a": 1.0, "b": 0.5, "c": -0.2}


def event(
    method: str = "POST", body: Any = None, content_type: str = "application/json"
) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /tiny/predict",
        "rawPath": "/tiny/predict",
        "rawQueryString": "",
        "headers": {"content-type": content_type, "host": "localhost"},
        "requestContext": {
            "http": {"method": method, "path": "/tiny/predict", "protocol": "HTTP/1.1"},
            "requestId": "req-42",
            "routeKey": "POST /tiny/predict",
            "stage": "$default",
        },
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


CONTEXT = SimpleNamespace(
    aws_request_id="ctx-1", function_name="tiny", get_remaining_time_in_millis=lambda: 15000
)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    raw, meta = tensor_classifier()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "MLOPS_REGISTRY_BUCKET": BUCKET,
        "MLOPS_MODEL_NAME": "tiny",
        "MLOPS_MODEL_VERSION": "1.0.0",
        "MLOPS_MODEL_SHA256": str(meta["sha256"]),
        "MLOPS_ENDPOINT": "predict",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MLOPS_MAX_BATCH_ROWS", raising=False)
    inference._cache.clear()
    with mock_aws():
        import boto3

        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="models/tiny/1.0.0/model.onnx", Body=raw)
        s3.put_object(Bucket=BUCKET, Key="models/tiny/1.0.0/metadata.json", Body=json.dumps(meta))
        yield meta
    inference._cache.clear()


def _call(ev: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = inference.handler(ev, CONTEXT)
    assert resp["headers"]["content-type"] == "application/json"
    return resp["statusCode"], json.loads(resp["body"])


def test_predict(registry: dict[str, Any]) -> None:
    status, body = _call(event(body={"instances": [ROW]}))
    assert status == 200
    assert body["predictions"] == [0] and body["classes"] == [0, 1]
    assert body["model"] == "tiny" and body["version"] == "1.0.0" and body["request_id"] == "req-42"


def test_model_is_loaded_once(registry: dict[str, Any]) -> None:
    _call(event(body={"instances": [ROW]}))
    first = next(iter(inference._cache.values()))
    _call(event(body={"inputs": [[1, 2, 3]]}))
    assert next(iter(inference._cache.values())) is first


def test_get_describes_the_model(registry: dict[str, Any]) -> None:
    status, body = _call(event("GET"))
    assert status == 200
    assert [f["name"] for f in body["features"]] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("ev", "status", "error"),
    [
        (event(body="{bad"), 400, "invalid_json"),
        (event(body={"rows": []}), 400, "invalid_request"),
        (event(body={"instances": [ROW | {"a": -1.5}]}), 422, "invalid_input"),
        (event(body={"instances": [ROW]}, content_type="text/csv"), 415, "unsupported_media_type"),
        (event(body={"instances": [ROW] * 1001}), 413, "payload_too_large"),
        (event("DELETE"), 405, "method_not_allowed"),
    ],
)
def test_errors_are_json(
    registry: dict[str, Any], ev: dict[str, Any], status: int, error: str
) -> None:
    got_status, body = _call(ev)
    assert (got_status, body["error"]) == (status, error)
    assert body["request_id"] == "req-42"
    if status == 422:
        assert body["details"] == [{"row": 0, "field": "a", "problem": "must be >= 0, got -1.5"}]


def test_sha_mismatch_is_503_without_internals(
    registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_MODEL_SHA256", "0" * 64)
    status, body = _call(event(body={"instances": [ROW]}))
    assert status == 503
    assert body["error"] == "model_unavailable"
    assert BUCKET not in json.dumps(body) and "0" * 64 not in json.dumps(body)
    assert "INTEGRITY FAILURE" in capsys.readouterr().err
    assert all(s._bundle is None for s in inference._cache.values())  # retried next time


def test_missing_model_is_503(registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_MODEL_VERSION", "9.9.9")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "3")
    status, body = _call(event(body={"instances": [ROW]}))
    assert (status, body["error"]) == (503, "model_unavailable")
    headers = inference.handler(event(body={"instances": [ROW]}), CONTEXT)["headers"]
    assert headers["x-mlops-executed-version"] == "3"  # as on every answer of the handler
    assert headers["x-mlops-cold-start"] == "false"


def test_unexpected_error_is_500_with_traceback_in_logs_only(
    registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _call(event(body={"instances": [ROW]}))
    bundle = next(iter(inference._cache.values())).bundle

    def boom(*_: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(bundle, "encode", boom)
    status, body = _call(event(body={"instances": [ROW]}))
    assert status == 500 and body["error"] == "internal_error"
    assert "secret" not in json.dumps(body)
    err = capsys.readouterr().err
    assert "Traceback" in err and "secret internals" in err


def test_incomplete_environment_is_503(
    registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_REGISTRY_BUCKET")
    status, body = _call(event(body={"instances": [ROW]}))
    assert (status, body["error"]) == (503, "model_unavailable")


def test_batch_limit_from_environment(
    registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_MAX_BATCH_ROWS", "2")
    status, body = _call(event(body={"instances": [ROW] * 3}))
    assert (status, body["error"]) == (413, "payload_too_large")
