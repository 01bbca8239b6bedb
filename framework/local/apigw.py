"""API Gateway HTTP API semantics, pure: route matching, payload v2.0 events, responses.

No I/O here; ``gateway.py`` feeds it the deployed routes and the HTTP requests.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

_TEXT_TYPES = re.compile(
    r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)|[^;]*\+(json|xml))", re.I
)
_PARAM = re.compile(r"^\{([A-Za-z0-9_.\-]+)(\+?)\}$")


class BadIntegrationResponse(ValueError):
    """The function's result cannot be turned into an HTTP response."""


@dataclass(frozen=True)
class Route:
    """One route of one API, bound to a Lambda proxy integration."""

    api_id: str
    route_key: str  # "POST /a/{b}", "ANY /x/{proxy+}" or "$default"
    function_uri: str  # Lambda ARN, possibly qualified
    method: str = "ANY"
    pattern: re.Pattern[str] | None = None
    params: tuple[str, ...] = ()
    rank: tuple[int, int, int, int] = (9, 0, 0, 1)  # lower sorts first
    authorization: str = "NONE"  # or "AWS_IAM": the gateway requires a SigV4 signature

    @staticmethod
    def build(api_id: str, route_key: str, function_uri: str) -> Route:
        if route_key == "$default":
            return Route(api_id, route_key, function_uri)
        method, _, path = route_key.partition(" ")
        parts: list[str] = []
        params: list[str] = []
        literals = greedy = 0
        for segment in path.strip("/").split("/") if path.strip("/") else []:
            match = _PARAM.match(segment)
            if match is None:
                parts.append(re.escape(segment))
                literals += 1
            elif match.group(2):
                parts.append("(.+)")
                params.append(match.group(1))
                greedy = 1
            else:
                parts.append("([^/]+)")
                params.append(match.group(1))
        regex = re.compile("^/" + "/".join(parts) + "/?$" if parts else "^/?$")
        has_params = 1 if params else 0
        rank = (greedy, has_params, -literals, 1 if method.upper() == "ANY" else 0)
        return Route(api_id, route_key, function_uri, method.upper(), regex, tuple(params), rank)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.pattern is None:
            return {}
        if self.method not in ("ANY", method.upper()):
            return None
        found = self.pattern.match(path)
        if found is None:
            return None
        return dict(zip(self.params, found.groups(), strict=True))


@dataclass
class RouteTable:
    """All routes, grouped by API id, ordered most specific first."""

    apis: dict[str, list[Route]] = field(default_factory=dict)
    stages: dict[str, set[str]] = field(default_factory=dict)

    def add(self, route: Route) -> None:
        routes = self.apis.setdefault(route.api_id, [])
        routes.append(route)
        routes.sort(key=lambda r: r.rank)

    def find(self, api_id: str, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.apis.get(api_id, []):
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None


@lru_cache(maxsize=4)
def _clf_time(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _is_text(content_type: str) -> bool:
    return not content_type or bool(_TEXT_TYPES.match(content_type.strip()))


def build_event(
    *,
    route: Route,
    api_id: str,
    stage: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    path_params: dict[str, str],
    source_ip: str,
    request_id: str,
    protocol: str = "HTTP/1.1",
    now: float | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event."""
    now = time.time() if now is None else now
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    merged.setdefault("x-forwarded-for", source_ip)
    merged.setdefault("x-forwarded-proto", "http")
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    content_type = merged.get("content-type", "")
    text = _is_text(content_type)
    body_text = ""
    if text:
        try:
            body_text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = False
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "domainName": merged.get("host", "127.0.0.1"),
            "domainPrefix": merged.get("host", "127.0.0.1").split(".", 1)[0].split(":", 1)[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": stage,
            "time": _clf_time(int(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not text,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = path_params
    if body:
        event["body"] = body_text if text else base64.b64encode(body).decode()
    return event


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_response(status: int, payload: Any) -> HttpResponse:
    body = json.dumps(payload).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


def translate_result(result: Any) -> HttpResponse:
    """The function's result → HTTP response, per the payload format 2.0 rules."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return json_response(200, result)
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise BadIntegrationResponse(f"invalid statusCode {status!r}")
    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise BadIntegrationResponse("headers must be an object")
    for name, value in raw_headers.items():
        headers.append((str(name).lower(), _header_value(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(str(name).lower(), _header_value(v)) for v in values]
    headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
    body = result.get("body")
    if body is None:
        data = b""
    elif isinstance(body, str):
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    else:
        data = json.dumps(body).encode()
    if not any(name == "content-type" for name, _ in headers) and data:
        headers.append(("content-type", "application/json"))
    return HttpResponse(status, headers, data)


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
