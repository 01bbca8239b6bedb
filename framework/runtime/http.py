"""API Gateway HTTP API (payload format 2.0) events in, v2 responses out.

The local gateway produces the same events, so handlers see one shape everywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from framework.runtime.errors import RequestError
from framework.runtime.features import OversizedNumber

MAX_BODY_BYTES = 6 * 1024 * 1024  # the Lambda synchronous payload limit
JSON_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}
# json.dumps(x, separators=(",", ":"), allow_nan=False), without a new encoder per call
_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""
    query: dict[str, str] = field(default_factory=dict)
    request_id: str | None = None
    # the body as the event gave it (not base64): json_body decodes this, skipping bytes
    text: str | None = field(default=None, compare=False, repr=False)


def parse_event(event: Mapping[str, Any]) -> Request:
    """Read method, path, headers and the (possibly base64) body of a v2.0 event."""
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {}
    method = str(http.get("method") or event.get("httpMethod") or "GET").upper()
    path = str(event.get("rawPath") or http.get("path") or "/")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body")
    text = None
    if raw is None:
        body = b""
    elif event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError):
            raise RequestError.bad_request(
                "the body is marked base64 but is not valid base64"
            ) from None
    else:
        text = str(raw)
        body = text.encode("utf-8")
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(
            413,
            "payload_too_large",
            f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}",
        )
    params = event.get("queryStringParameters")
    query = {str(k): str(v) for k, v in params.items()} if params else {}
    request_id = ctx.get("requestId")
    return Request(method, path, headers, body, query, str(request_id) if request_id else None,
                   text)


def is_json_type(content_type: str) -> bool:
    if content_type == "application/json":
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def json_body(request: Request) -> Any:
    """Decode the JSON body: 415 for a non-JSON content type (absent is accepted), 400 if bad."""
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_type(content_type):
        raise RequestError(
            415,
            "unsupported_media_type",
            f"content-type must be application/json, got {content_type[:60]!r}",
        )
    if not request.body.strip():
        raise RequestError(400, "invalid_json", "the body is empty; send a JSON object")
    text = request.text
    return _decode(text if text is not None and _same_text(text) else request.body, "the body")


def json_bytes(data: bytes, what: str = "the body") -> Any:
    """Decode JSON bytes (400 ``invalid_json`` naming ``what`` when they are not JSON)."""
    if not data.strip():
        raise RequestError(400, "invalid_json", f"{what} is empty; send a JSON object")
    return _decode(data, what)


def _decode(doc: str | bytes, what: str) -> Any:
    try:
        return _loads(doc)
    except UnicodeDecodeError:
        raise RequestError(400, "invalid_json", f"{what} is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise RequestError(
            400,
            "invalid_json",
            f"{what} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}",
        ) from None
    except RecursionError:
        raise RequestError(400, "invalid_json", f"{what} is nested too deeply") from None


def _loads(doc: str | bytes) -> Any:
    """``json.loads``; when an integer is longer than the interpreter converts (4300 digits)
    the body is decoded again with such integers as ``OversizedNumber``, which validation
    rejects as out of range (a 422 naming the row and the field)."""
    try:
        return json.loads(doc)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError:
        return json.loads(doc, parse_int=_int)


def _int(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return OversizedNumber(text)


def _same_text(text: str) -> bool:
    """Whether ``json.loads`` reads ``text.encode()`` back as ``text`` (no UTF-16/32 guess
    from leading NUL bytes, no UTF-8 BOM to drop), so decoding the text is the same."""
    return "\x00" not in text[:2] and text[:1] != "\ufeff"


class Encoded:
    """A payload already encoded as compact JSON text; ``json_response`` sends it as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A v2.0 response with a compact JSON body (non-finite numbers become null)."""
    if type(payload) is Encoded:
        body = payload.text
    else:
        try:
            body = _compact(payload)
        except ValueError:
            body = _compact(finite(payload))
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, **headers} if headers else JSON_HEADERS.copy(),
        "body": body,
        "isBase64Encoded": False,
    }


class Binary:
    """A JSON header followed by raw bytes (the OIP binary tensor data extension)."""

    __slots__ = ("header", "data")

    def __init__(self, header: Any, data: bytes) -> None:
        self.header = header
        self.data = data


def binary_response(status: int, payload: Binary) -> dict[str, Any]:
    """A v2.0 response of the compact JSON header and the raw bytes after it, base64-encoded
    (``isBase64Encoded``: API Gateway decodes it), ``Inference-Header-Content-Length`` giving
    the header's length in bytes."""
    try:
        header = _compact(payload.header).encode()
    except ValueError:
        header = _compact(finite(payload.header)).encode()
    return {
        "statusCode": status,
        "headers": {"content-type": "application/octet-stream", "cache-control": "no-store",
                    "inference-header-content-length": str(len(header))},
        "body": base64.b64encode(header + payload.data).decode("ascii"),
        "isBase64Encoded": True,
    }


def error_response(err: RequestError, request_id: str | None = None) -> dict[str, Any]:
    body = err.body()
    if request_id:
        body["request_id"] = request_id
    headers = {"allow": "GET, POST"} if err.status == 405 else None
    return json_response(err.status, body, headers)


def finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if x == x and x not in (float("inf"), float("-inf")) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    return x
