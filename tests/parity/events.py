"""AWS event shapes, written from AWS's documentation — not from ``framework.local.apigw``.

- ``http_api_event``: an API Gateway HTTP API Lambda proxy event, payload format version 2.0
  ("Working with AWS Lambda proxy integrations for HTTP APIs"): ``version``, ``routeKey``,
  ``rawPath``, ``rawQueryString``, ``cookies``, ``headers`` (names lower-case, repeated values
  joined by commas), ``queryStringParameters``, ``requestContext`` (``accountId``, ``apiId``,
  ``domainName``, ``domainPrefix``, ``http`` {method, path, protocol, sourceIp, userAgent},
  ``requestId``, ``routeKey``, ``stage``, ``time`` in CLF form, ``timeEpoch`` in ms), ``body``
  (absent when the request has none), ``pathParameters``, ``isBase64Encoded``.
- ``scheduled_event``: the EventBridge "Scheduled Event" a schedule rule emits
  ("Amazon EventBridge events": ``version`` "0", ``id``, ``detail-type``, ``source``
  ``aws.events``, ``account``, ``time``, ``region``, ``resources`` [rule ARN], ``detail`` {}).
- ``input_transformer``: what a target with an ``InputTransformer`` receives instead
  ("Transforming target input": ``<name>`` placeholders filled from ``InputPathsMap`` JSON
  paths; a string value inside quotes is inserted as its raw text).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT = "123456789012"


def http_api_event(
    *,
    route_key: str,
    api_id: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
    base64_body: bool = False,
    query: str = "",
    source_ip: str = "127.0.0.1",
    stage: str = "$default",
    request_id: str | None = None,
) -> dict[str, Any]:
    """One HTTP API request as the Lambda proxy integration (payload 2.0) delivers it.

    ``headers`` are the request's headers as the client sent them (``host`` included);
    ``base64_body`` sends the body base64-encoded with ``isBase64Encoded: true``, as API
    Gateway does for binary payloads.
    """
    now = time.time()
    lowered: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers.items():
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        elif key in lowered:
            lowered[key] += "," + value
        else:
            lowered[key] = value
    host = lowered.get("host", "127.0.0.1")
    lowered.setdefault("x-forwarded-for", source_ip)
    lowered.setdefault("x-forwarded-port", host.rpartition(":")[2] if ":" in host else "443")
    lowered.setdefault("x-forwarded-proto", "http")
    lowered.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}")
    request_id = request_id or uuid.uuid4().hex[:16]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {"method": method.upper(), "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": lowered.get("user-agent", "")},
            "requestId": request_id,
            "routeKey": route_key,
            "stage": stage,
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": base64_body,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    if body:
        event["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
    return event


def scheduled_event(rule_arn: str, region: str, at: datetime) -> dict[str, Any]:
    """The event a ``rate()``/``cron()`` rule emits when it fires at ``at``."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def _json_path(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.removeprefix("$").strip(".").split("."):
        if not part:
            continue
        value = value.get(part) if isinstance(value, dict) else None
    return value


def input_transformer(transformer: dict[str, Any], event: dict[str, Any]) -> Any:
    """The JSON a target with ``transformer`` receives for ``event``."""
    template = str(transformer["InputTemplate"])
    values = {name: _json_path(event, path)
              for name, path in (transformer.get("InputPathsMap") or {}).items()}

    def fill(match: re.Match[str]) -> str:
        quoted, name = match.group(1), match.group(2)
        value = values.get(name)
        if quoted:  # "<name>": the value's text inside the template's quotes
            text = value if isinstance(value, str) else json.dumps(value)
            return '"' + json.dumps(text)[1:-1] + '"'
        return json.dumps(value)

    return json.loads(re.sub(r'("?)<([A-Za-z0-9_.-]+)>\1', fill, template))
