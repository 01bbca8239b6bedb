"""The local HTTP gateway: deployed API Gateway HTTP APIs, served on 127.0.0.1.

URL form: ``http://127.0.0.1:<gateway port>/<api id>/<path>`` — the path after the API id is
matched against that API's routes (``$default`` stage). If the API has a named stage, the form
``/<api id>/<stage>/<path>`` reaches it too. Internal endpoints:

- ``GET /_mlops/health`` → 200 JSON;
- ``POST /_mlops/refresh`` → reload routes and forget cached alias resolution (the deployer
  calls it after each deploy); otherwise routes are reloaded at most every 2 seconds;
- ``POST /_mlops/flush`` → upload every buffered capture record now (tests, CLI);
- ``GET /_mlops/workers`` → the pids of the runner's worker processes;
- ``GET /metrics`` → Prometheus text (see ``metrics.py``);
- routes the daemon registers in ``Gateway.admin`` (the scheduler's clock, invoke: see
  ``admin.py``); ``Gateway.on_refresh`` hooks also run on ``POST /_mlops/refresh``.

After answering a request whose route is plain (no IAM, an alias without weights, no
shadow), the gateway may hand the keep-alive connection to a warm worker, which answers the
next requests itself (``direct.py``); connections come back through ``GatewayServer.resume``.

Routes with ``AuthorizationType: AWS_IAM`` require a SigV4 ``Authorization`` header (403
otherwise, like API Gateway). Locally its structure, service and date are checked, not the
signature itself: moto accepts any credentials, so there is no secret to check it against.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import unquote

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
from .direct import Ticket
from .metrics import Metrics
from .runner import Invocation, Runner

log = logging.getLogger(__name__)

MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous payload limit
DRAIN_LIMIT = 64 * 1024 * 1024
ROUTES_TTL_S = 2.0
_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request,"
    r"\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$")
MAX_CLOCK_SKEW_S = 15 * 60
_LAMBDA_ARN = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d+:function:[^/]+?(?=/invocations|$)")


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
    """Route table cache + request handling; the HTTP server is a thin shell around it."""

    def __init__(
        self,
        runner: Runner,
        control_url: str,
        regions: Callable[[], list[str]],
        info: dict[str, Any] | None = None,
    ) -> None:
        self.runner = runner
        self.control_url = control_url
        self.regions = regions
        self.info = info or {}
        # path -> handler(method, query, body); checked before the built-in routes
        self.admin: dict[str, Callable[[str, str, bytes], HttpResponse]] = {}
        self.on_refresh: list[Callable[[], object]] = []
        self._table = RouteTable()
        self._loaded_at = -1e9
        self._lock = threading.Lock()
        self._reloading = False
        self.metrics = Metrics()
        self.mirror = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shadow")
        capture = runner.capture
        self.metrics.callbacks.update({
            "mlops_capture_records_total": ("counter", lambda: capture.records),
            "mlops_capture_uploaded_total": ("counter", lambda: capture.uploaded_rows),
            "mlops_capture_upload_failures_total": ("counter", lambda: capture.failures),
            "mlops_capture_pending": ("gauge", capture.pending),
            "mlops_capture_dead_letters_total": ("counter", lambda: capture.dead),
            "mlops_log_events_shipped_total": ("counter", lambda: runner.logs.shipped),
        })
        self.hub = runner.hub
        if self.hub is not None:
            hub = self.hub
            hub.metrics = self.metrics
            self.metrics.callbacks.update({
                "mlops_direct_connections": ("gauge", hub.handed),
                "mlops_direct_adopted_total": ("counter", lambda: hub.adopted),
                "mlops_direct_replayed_total": ("counter", lambda: hub.replayed),
            })

    def refresh(self) -> RouteTable:
        table = load_routes(self.control_url, self.regions())
        with self._lock:
            self._table, self._loaded_at = table, time.monotonic()
        self.runner.refresh()
        return table

    def table(self) -> RouteTable:
        """The routes; once loaded, a stale table is served while one thread reloads it."""
        if time.monotonic() - self._loaded_at <= ROUTES_TTL_S:
            return self._table
        if self._loaded_at < 0:  # never loaded: this request has to wait
            try:
                return self.refresh()
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

    def internal(self, method: str, path: str) -> HttpResponse | None:
        if path == "/_mlops/health" and method in ("GET", "HEAD"):
            return json_response(200, {"status": "ok", **self.info})
        if path == "/metrics" and method in ("GET", "HEAD"):
            if self.hub is not None:
                self.hub.sync()  # the workers' latest reports count
            body = self.metrics.render().encode()
            return HttpResponse(200, [("content-type", "text/plain; version=0.0.4")], body)
        if path == "/_mlops/workers" and method == "GET":
            return json_response(200, {"pids": self.runner.worker_pids()})
        if path == "/_mlops/flush" and method == "POST":
            uploaded = self.runner.flush_capture()
            shipped = self.runner.logs.ship()
            return json_response(200, {"uploaded": uploaded, "log_events": shipped})
        if path == "/_mlops/refresh" and method == "POST":
            table = self.refresh()
            if self.hub is not None:
                self.hub.revoke()  # handed connections come back and are routed afresh
            for hook in self.on_refresh:
                try:
                    hook()
                except Exception:
                    log.exception("refresh hook %r failed", hook)
            routes = {api: [r.route_key for r in rs] for api, rs in table.apis.items()}
            return json_response(200, {"refreshed": True, "routes": routes})
        if path.startswith("/_mlops/"):
            return json_response(404, {"message": "Not Found"})
        return None

    def serve(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        protocol: str = "HTTP/1.1",
    ) -> tuple[HttpResponse, Ticket | None]:
        """The response, and a ticket if the connection's next requests may go direct."""
        path, _, query = target.partition("?")
        admin = self.admin.get(path)
        if admin is not None:
            return admin(method, query, body), None
        internal = self.internal(method, path)
        if internal is not None:
            return internal, None
        request_id = str(uuid.uuid4())
        response, ticket = self._route(method, target, path, query, headers, body, source_ip,
                                       request_id, protocol)
        return HttpResponse(
            response.status,
            [*response.headers, ("x-amzn-requestid", request_id), ("apigw-requestid", request_id)],
            response.body,
        ), ticket

    def _route(
        self,
        method: str,
        target: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        request_id: str,
        protocol: str,
    ) -> tuple[HttpResponse, Ticket | None]:
        api_id, _, rest = path.lstrip("/").partition("/")
        table = self.table()
        raw_path = "/" + rest
        stage = "$default"
        first, _, after = rest.partition("/")
        if first and first != "$default" and first in table.stages.get(api_id, set()):
            stage, rest = first, after
        match_path = "/" + unquote(rest)
        found = table.find(api_id, method, match_path)
        if found is None:
            self.metrics.inc("mlops_unrouted_requests_total")
            return json_response(404, {"message": "Not Found"}), None
        route, params = found
        identity = None
        if route.authorization == "AWS_IAM":
            identity = check_sigv4({k.lower(): v for k, v in headers})
            if identity is None:
                self.metrics.inc("mlops_unauthorized_requests_total")
                return json_response(403, {"message": "Forbidden"}), None
        event = build_event(
            route=route,
            api_id=api_id,
            stage=stage,
            method=method,
            raw_path=raw_path,
            raw_query=query,
            headers=headers,
            body=body,
            path_params=params,
            source_ip=source_ip,
            request_id=request_id,
            protocol=protocol,
        )
        if identity is not None:
            event["requestContext"]["authorizer"] = {"iam": identity}
        started = time.perf_counter()
        try:
            result = self.runner.invoke(route.function_uri, None, event)
        except Exception:
            log.exception("invoke of %s failed", route.function_uri)
            return json_response(500, {"message": "Internal Server Error"}), None
        extra = [
            ("x-mlops-executed-version", result.executed_version),
            ("x-mlops-cold-start", "true" if result.cold_start else "false"),
        ]
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
            self.mirror.submit(self._shadow, route.function_uri, shadow, event, result)
        ticket = None
        if (self.hub is not None and kind is None and identity is None and not shadow
                and not result.weighted and result.pool is not None and protocol == "HTTP/1.1"
                and method != "HEAD"):  # a worker always writes the body
            ticket = self._ticket(route, result, match_path, {
                "route_key": route.route_key, "api_id": api_id, "stage": stage,
                "method": method, "target": target, "raw_path": raw_path, "raw_query": query,
                "path_params": params, "source_ip": source_ip,
                "invoked_arn": result.invoked_arn, "version": result.executed_version})
        return HttpResponse(response.status, [*response.headers, *extra], response.body), ticket

    def _ticket(self, route: Route, result: Invocation, path: str, fields: dict[str, Any],
                ) -> Ticket:
        api_id, method = fields["api_id"], fields["method"]
        pool = result.pool

        def still_valid() -> bool:
            """Same route, same function version, no weights, no shadow: still direct."""
            found = self.table().find(api_id, method, path)
            if found is None or found[0] != route:
                return False
            fn, weighted, _ = self.runner.target(route.function_uri)
            return not weighted and not fn.shadow and self.runner.pool_of(fn) is pool

        assert pool is not None
        return Ticket(pool, fields, still_valid)

    def _shadow(self, function: str, version: str, event: dict[str, Any],
                primary: Invocation) -> None:
        """Shadow rollouts: the candidate answers a copy of the request (its answer is
        captured by its own handler, never returned); count how often it agrees."""
        try:
            copy = self.runner.invoke(function, version, event)
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


def _predictions(payload: Any) -> list[Any] | None:
    """The ``predictions`` of a handler's v2 response, if it has them."""
    try:
        body = json.loads(payload["body"]) if isinstance(payload, dict) else None
    except (KeyError, TypeError, ValueError):
        return None
    got = body.get("predictions") if isinstance(body, dict) else None
    return got if isinstance(got, list) else None


class _Prefixed(io.RawIOBase):
    """A socket's input, after bytes already read from it (by a worker handing it back)."""

    def __init__(self, prefix: bytes, sock: socket.socket) -> None:
        self._prefix = memoryview(prefix)
        self._raw = socket.SocketIO(sock, "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An unparseable request line is answered with a status line and headers, not in the
    # HTTP/0.9 form (a bare body) http.server falls back to.
    default_request_version = "HTTP/1.0"
    wbufsize = 1 << 16  # headers and body leave in one write
    disable_nagle_algorithm = True
    server: GatewayServer

    def send_error(self, code: int, message: str | None = None, explain: str | None = None,
                   ) -> None:
        """Malformed requests (bad request line, headers too long...): JSON, like every other
        answer of the gateway, and the connection closes."""
        self.close_connection = True
        reason = message or HTTPStatus(code).phrase
        body = json.dumps({"message": reason}).encode()
        self.send_response(code, HTTPStatus(code).phrase)
        self.send_header("content-type", "application/json")
        self.send_header("connection", "close")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def __init__(self, request: Any, client_address: Any, server: Any, prefix: bytes = b"",
                 ) -> None:
        self._prefix = prefix
        self._ticket: Ticket | None = None
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        super().setup()
        if self._prefix:
            self.rfile.close()  # nothing read yet; releases its hold on the socket
            self.rfile = io.BufferedReader(_Prefixed(self._prefix, self.connection))

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            ticket, self._ticket = self._ticket, None
            if ticket is not None and self.server.handoff(self, ticket):
                return
            self.handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                length = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._discard(length)
            return None
        return self.rfile.read(length) if length else b""

    def _discard(self, length: int) -> None:
        """Read an oversized body so the client sees the 413 (not a reset), within reason."""
        if length > DRAIN_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            response = json_response(413, {"message": "Request Entity Too Large"})
        else:
            response, self._ticket = self.server.gateway.serve(
                self.command,
                self.path,
                list(self.headers.items()),
                body,
                self.client_address[0],
                self.request_version,
            )
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        self._local = threading.local()  # .handed: this thread's connection went to a worker
        super().__init__(address, _Handler)
        if gateway.hub is not None:
            gateway.hub.resume = self.resume

    def handoff(self, handler: _Handler, ticket: Ticket) -> bool:
        """Give the handler's connection to a warm worker (see ``direct.py``)."""
        hub = self.gateway.hub
        sock = handler.connection
        if hub is None or handler.rfile.closed:
            return False
        sock.setblocking(False)
        try:
            # a request already on its way comes along
            prefix = cast(io.BufferedReader, handler.rfile).peek()
        except OSError:
            return False
        finally:
            sock.setblocking(True)
        self._local.handed = hub.adopt(ticket, sock, handler.client_address, prefix)
        return bool(self._local.handed)

    def resume(self, sock: socket.socket, address: Any, prefix: bytes) -> None:
        """Serve a connection a worker handed back (or left behind), from ``prefix`` on."""

        def run() -> None:
            try:
                _Handler(sock, address, self, prefix)
            except Exception:
                self.handle_error(sock, address)
            finally:
                self.shutdown_request(sock)

        threading.Thread(target=run, name="gateway-resumed", daemon=True).start()

    def shutdown_request(self, request: Any) -> None:
        if getattr(self._local, "handed", False):
            self._local.handed = False
            return  # a worker answers it now; the hub holds it
        super().shutdown_request(request)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        # The daemon's long-lived objects (moto's state, replayed journal) would otherwise be
        # traversed by every full collection, a pause of milliseconds on the request path:
        # freeze them and collect the young generation less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20000, 50, 50)
        super().serve_forever(poll_interval)
