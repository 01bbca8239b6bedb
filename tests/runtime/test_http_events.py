from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from framework.runtime.errors import RequestError
from framework.runtime.http import error_response, json_body, json_response, parse_event


def event(
    body: str | None,
    *,
    method: str = "POST",
    content_type: str | None = "application/json",
    b64: bool = False,
) -> dict[str, Any]:
    headers = {"Content-Type": content_type} if content_type else {}
    return {
        "version": "2.0",
        "routeKey": f"{method} /x/predict",
        "rawPath": "/x/predict",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": "/x/predict"}, "requestId": "rid"},
        "body": base64.b64encode(body.encode()).decode() if (b64 and body) else body,
        "isBase64Encoded": b64,
    }


def test_parse_event_reads_v2_fields() -> None:
    req = parse_event(event('{"inputs": [1]}'))
    assert (req.method, req.path, req.request_id) == ("POST", "/x/predict", "rid")
    assert req.headers["content-type"] == "application/json"
    assert json_body(req) == {"inputs": [1]}


def test_base64_body() -> None:
    assert json_body(parse_event(event('{"a": 1}', b64=True))) == {"a": 1}
    bad = event(None, b64=True) | {"body": "***"}
    with pytest.raises(RequestError) as info:
        parse_event(bad)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        ("{nope", "application/json", 400, "invalid_json"),
        ("", "application/json", 400, "invalid_json"),
        ('{"a": 1}', "text/plain", 415, "unsupported_media_type"),
        ('{"a": 1}', "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_body_errors(body: str, content_type: str, status: int, error: str) -> None:
    with pytest.raises(RequestError) as info:
        json_body(parse_event(event(body, content_type=content_type)))
    assert (info.value.status, info.value.error) == (status, error)


def test_json_variants_and_absent_content_type_are_accepted() -> None:
    for ct in ("application/json; charset=utf-8", "application/vnd.api+json", None):
        assert json_body(parse_event(event("[]", content_type=ct))) == []


def test_responses_are_v2_json() -> None:
    resp = json_response(200, {"x": [1.5, float("nan")]})
    assert resp["statusCode"] == 200
    assert resp["headers"]["content-type"] == "application/json"
    assert json.loads(resp["body"]) == {"x": [1.5, None]}
    err = error_response(RequestError(405, "method_not_allowed", "no"), "rid")
    assert err["headers"]["allow"] == "GET, POST"
    assert json.loads(err["body"]) == {
        "error": "method_not_allowed",
        "message": "no",
        "request_id": "rid",
    }
