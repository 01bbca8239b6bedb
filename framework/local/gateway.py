"""The local API Gateway (HTTP APIs): deployed routes served on 127.0.0.1 by aiohttp.

URL form: ``http://127.0.0.1:<gateway port>/<api id>/<path>`` — the path after the API id is
matched against that API's routes (``$default`` stage). If the API has a named stage, the form
``/<api id>/<stage>/<path>`` reaches it too. Every route behaves the same way: the request
becomes a payload v2.0 event, the Lambda proxy integration's function (alias weights drawn
per request) answers it through the local Lambda service (``runner.py``), and its result
becomes the HTTP response, as API Gateway translates it. Shadow versions get a copy.

HTTP itself (framing, keep-alive, chunked bodies, ``Expect``, malformed requests) is aiohttp's,
a maintained server, not code of this project.

Internal endpoints:

- ``GET /_mlops/health`` → 200 JSON;
- ``POST /_mlops/refresh`` → reload routes and forget cached alias resolution (the deployer
  calls it after each deploy); otherwise routes are reloaded at most every 2 seconds;
- ``POST /_mlops/flush`` → deliver what the local Firehose buffers now (its buffer interval
  elapses; tests, CLI);
- ``GET /_mlops/workers`` → the pids of the execution environments;
- ``GET /metrics`` → Prometheus text (see ``metrics.py``);
- routes the daemon registers in ``Gateway.admin`` (the scheduler's clock: see ``admin.py``);
  ``Gateway.on_refresh`` hooks also run on ``POST /_mlops/refresh``.

Routes with ``AuthorizationType: AWS_IAM`` require a SigV4 ``Authorization`` header (403
otherwise, like API Gateway). Locally its structure, service and date are checked, not the
signature itself: moto accepts any credentials, so there is no secret to check it against.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from framework.runtime.clients import Connection

from .apigw import (
    BadIntegrationResponse,
    HttpResponse,
    Route,
    RouteTable,
    build_event,
    json_response,
    translate_result,
)
from .metrics import Metrics
from .runner import Invocation, Runner

log = logging.getLogger(__name__)

MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous payload limit
ROUTES_TTL_S = 2.0
_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request,"
    r"\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$")
MAX_CLOCK_SKEW_S = 15 * 60
_LAMBDA_ARN = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d+:function:[^/]+?(?=/invocations|$)")
Flush = Callable[[], int]


def lambda_arn_of(integration_uri: str) -> str | None:
    """The Lambda ARN in an integration URI (plain ARN or the apigateway invocation form)."""
    match = _LAMBDA_ARN.search(integration_uri)
    return match.group(0) if match else None


def _pages(call: Callable[..., dict[str, Any]], key: str, **kwargs: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        resp = call(**kwargs, **({"NextToken": token} if token else {}))
        items += resp.get(key, [])
        token = resp.get("NextToken")
        if not token:
            return items


def load_routes(control_url: str, regions: list[str]) -> RouteTable:
    """Read every HTTP API's routes and Lambda proxy integrations from the control plane."""
    table = RouteTable()
    for region in regions:
        conn = Connection(region, control_url, dummy_credentials=True, max_attempts=1)
        client = conn.client("apigatewayv2")
        for api in _pages(client.get_apis, "Items"):
            if api.get("ProtocolType", "HTTP") != "HTTP":
                continue
            api_id = api["ApiId"]
            integrations = {
                i["IntegrationId"]: i
                for i in _pages(client.get_integrations, "Items", ApiId=api_id)
            }
            stages = {s["StageName"] for s in _pages(client.get_stages, "Items", ApiId=api_id)}
            table.stages[api_id] = stages
            for route in _pages(client.get_routes, "Items", ApiId=api_id):
                target = str(route.get("Target", ""))
                integration = integrations.get(target.removeprefix("integrations/"))
                if integration is None or integration.get("IntegrationType") != "AWS_PROXY":
                    continue
                arn = lambda_arn_of(str(integration.get("IntegrationUri", "")))
                if arn is None:
                    continue
                built = Route.build(api_id, route["RouteKey"], arn)
                auth = str(route.get("AuthorizationType") or "NONE")
                table.add(dataclasses.replace(built, authorization=auth))
    return table


def check_sigv4(headers: dict[str, str], now: float | None = None) -> dict[str, str] | None:
    """The IAM identity of a SigV4-signed request (structure only), or None if unsigned."""
    match = _SIGV4.match(headers.get("authorization", "").strip())
    if match is None:
        return None
    access_key, _date, _region, service, signed, _sig = match.groups()
    if service != "execute-api" or "host" not in signed.split(";"):
        return None
    stamp = headers.get("x-amz-date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    if abs((time.time() if now is None else now) - when) > MAX_CLOCK_SKEW_S:
        return None
    return {"accessKey": access_key, "accountId": "123456789012",
            "userArn": f"arn:aws:iam::123456789012:user/{access_key}"}


class Gateway:
    """Route table cache + request handling, served by ``start``."""

    def __init__(
        self,
        runner: Runner,
        control_url: str,
        regions: Callable[[], list[str]],
        info: dict[str, Any] | None = None,
        flush: Flush | None = None,
    ) -> None:
        self.runner = runner
        self.control_url = control_url
        self.regions = regions
        self.info = info or {}
        self.flush = flush
        # path -> handler(method, query, body), run in a thread; checked first
        self.admin: dict[str, Callable[[str, str, bytes], HttpResponse]] = {}
        self.on_refresh: list[Callable[[], object]] = []
        self._table = RouteTable()
        self._loaded_at = -1e9
        self._lock = threading.Lock()
        self._reloading = False
        self._site: asyncio.base_events.Server | None = None
        self._web: web.Server | None = None
        self.metrics = Metrics()
        self.metrics.callbacks.update({
            "mlops_log_events_shipped_total": ("counter", lambda: runner.logs.shipped),
        })

    def refresh(self) -> RouteTable:
        table = load_routes(self.control_url, self.regions())
        with self._lock:
            self._table, self._loaded_at = table, time.monotonic()
        self.runner.refresh()
        return table

    async def table(self) -> RouteTable:
        """The routes; once loaded, a stale table is served while one thread reloads it."""
        if time.monotonic() - self._loaded_at <= ROUTES_TTL_S:
            return self._table
        if self._loaded_at < 0:  # never loaded: this request has to wait
            try:
                return await asyncio.to_thread(self.refresh)
            except Exception:
                log.exception("could not load routes from the control plane")
                return self._table
        with self._lock:
            if self._reloading:
                return self._table
            self._reloading = True

        def reload() -> None:
            try:
                self.refresh()
            except Exception:
                log.exception("could not load routes from the control plane")
            finally:
                with self._lock:
                    self._reloading = False

        threading.Thread(target=reload, name="routes-reload", daemon=True).start()
        return self._table

    def internal(self, method: str, path: str) -> HttpResponse:
        """The gateway's own routes (run in a thread: some wait on the control plane)."""
        if path == "/metrics" and method in ("GET", "HEAD"):
            body = self.metrics.render().encode()
            return HttpResponse(200, [("content-type", "text/plain; version=0.0.4")], body)
        if path == "/_mlops/workers" and method == "GET":
            return json_response(200, {"pids": self.runner.worker_pids()})
        if path == "/_mlops/flush" and method == "POST":
            uploaded = self.flush() if self.flush is not None else 0
            shipped = self.runner.logs.ship()
            return json_response(200, {"uploaded": uploaded, "log_events": shipped})
        if path == "/_mlops/refresh" and method == "POST":
            table = self.refresh()
            for hook in self.on_refresh:
                try:
                    hook()
                except Exception:
                    log.exception("refresh hook %r failed", hook)
            routes = {api: [r.route_key for r in rs] for api, rs in table.apis.items()}
            return json_response(200, {"refreshed": True, "routes": routes})
        return json_response(404, {"message": "Not Found"})

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """One HTTP request, whatever its route."""
        method, path, query = request.method, request.raw_path.partition("?")[0], \
            request.query_string
        if path == "/_mlops/health":
            response = json_response(200, {"status": "ok", **self.info})
        elif path.startswith("/_mlops/") or path == "/metrics":
            admin = self.admin.get(path)
            if admin is None:
                response = await asyncio.to_thread(self.internal, method, path)
            else:
                response = await asyncio.to_thread(admin, method, query, await request.read())
        else:
            body = await _read_body(request)
            if body is None:
                response = json_response(413, {"message": "Request Entity Too Large"})
            else:
                request_id = str(uuid.uuid4())
                response = await self._route(request, path, query, body, request_id)
                response = HttpResponse(response.status, [
                    *response.headers, ("apigw-requestid", request_id)], response.body)
        out = web.Response(status=response.status, body=response.body)
        for name, value in response.headers:
            out.headers.add(name, value)
        return out

    async def _route(self, request: web.BaseRequest, path: str, query: str, body: bytes,
                     request_id: str) -> HttpResponse:
        method = request.method
        api_id, _, rest = path.lstrip("/").partition("/")
        table = await self.table()
        raw_path = "/" + rest
        stage = "$default"
        first, _, after = rest.partition("/")
        if first and first != "$default" and first in table.stages.get(api_id, set()):
            stage, rest = first, after
        found = table.find(api_id, method, "/" + unquote(rest))
        if found is None:
            self.metrics.inc("mlops_unrouted_requests_total")
            return json_response(404, {"message": "Not Found"})
        route, params = found
        headers = list(request.headers.items())
        identity = None
        if route.authorization == "AWS_IAM":
            identity = check_sigv4({k.lower(): v for k, v in headers})
            if identity is None:
                self.metrics.inc("mlops_unauthorized_requests_total")
                return json_response(403, {"message": "Forbidden"})
        peer = request.remote or "127.0.0.1"
        event = build_event(
            route=route, api_id=api_id, stage=stage, method=method, raw_path=raw_path,
            raw_query=query, headers=headers, body=body, path_params=params, source_ip=peer,
            request_id=request_id, protocol=f"HTTP/{request.version.major}.{request.version.minor}")
        if identity is not None:
            event["requestContext"]["authorizer"] = {"iam": identity}
        started = time.perf_counter()
        try:
            result = await self.runner.invoke_async(route.function_uri, None, event)
        except Exception:
            log.exception("invoke of %s failed", route.function_uri)
            return json_response(500, {"message": "Internal Server Error"})
        if result.timed_out:
            response = json_response(504, {"message": "Gateway Timeout"})
        elif result.error is not None:
            log.info("function error from %s: %s", route.function_uri, result.error)
            response = json_response(502, {"message": "Internal Server Error"})
        else:
            try:
                response = translate_result(result.payload)
            except BadIntegrationResponse as exc:
                log.info("bad response from %s: %s", route.function_uri, exc)
                response = json_response(500, {"message": "Internal Server Error"})
        status = response.status
        kind = ("timeout" if result.timed_out else "function" if result.error is not None
                else "server" if status >= 500 else "client" if status >= 400 else None)
        self.metrics.request(result.endpoint or route.function_uri, result.executed_version,
                             status, time.perf_counter() - started, result.cold_start, kind,
                             None if result.init_ms is None else result.init_ms / 1000)
        shadow = result.shadow_version
        if shadow and shadow != result.executed_version and status < 400:
            asyncio.ensure_future(self._shadow(route.function_uri, shadow, event, result))
        return response

    async def _shadow(self, function: str, version: str, event: dict[str, Any],
                      primary: Invocation) -> None:
        """Shadow rollouts: the candidate answers a copy of the request (its answer is
        captured by its own handler, never returned); count how often it agrees."""
        try:
            copy = await self.runner.invoke_async(function, version, event)
        except Exception:
            log.exception("shadow invoke of %s:%s failed", function, version)
            return
        labels = (("endpoint", primary.endpoint or function), ("version", version))
        ours, theirs = _predictions(primary.payload), _predictions(copy.payload)
        if copy.error is not None or copy.timed_out or theirs is None:
            self.metrics.inc("mlops_shadow_errors_total", labels)
            return
        if ours is None or len(ours) != len(theirs):
            return
        self.metrics.inc("mlops_shadow_compared_total", labels, len(ours))
        self.metrics.inc("mlops_shadow_agreed_total", labels,
                         sum(1 for a, b in zip(ours, theirs, strict=True) if a == b))

    async def start(self, host: str, port: int) -> None:
        """Serve on ``host:port`` (on the runner's loop)."""
        # The daemon's long-lived objects (moto's state, replayed journal) would otherwise be
        # traversed by every full collection, a pause of milliseconds on the request path.
        gc.collect()
        gc.freeze()
        self._web = web.Server(self.handle, access_log=None)
        self._site = await asyncio.get_running_loop().create_server(
            self._web, host, port, backlog=128, reuse_address=True)

    async def stop(self) -> None:
        if self._site is not None:
            self._site.close()
            self._site = None
        if self._web is not None:
            await self._web.shutdown(1.0)  # requests in flight finish, idle connections close
            self._web = None


async def _read_body(request: web.BaseRequest) -> bytes | None:
    """The body, or None past Lambda's 6 MB (aiohttp drains or closes the rest)."""
    if (request.content_length or 0) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(1 << 16):
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _predictions(payload: Any) -> list[Any] | None:
    """The ``predictions`` of a handler's v2 response, if it has them."""
    try:
        body = json.loads(payload["body"]) if isinstance(payload, dict) else None
    except (KeyError, TypeError, ValueError):
        return None
    got = body.get("predictions") if isinstance(body, dict) else None
    return got if isinstance(got, list) else None
