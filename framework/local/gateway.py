"""The local API Gateway (HTTP APIs): deployed routes served on 127.0.0.1 by aiohttp.

URL form: ``http://127.0.0.1:<gateway port>/<api id>/<path>`` — the path after the API id is
matched against that API's routes (``$default`` stage). If the API has a named stage, the form
``/<api id>/<stage>/<path>`` reaches it too. The gateway is to each API what a custom domain
with an API mapping is on AWS (the mapping's key is the API id): as there, the base path stays
in the event's ``rawPath`` and ``requestContext.http.path`` and ``domainName`` is the host the
client used, so a handler builds its own absolute URLs (the OpenAPI document's ``servers``)
the same way on both. Every route behaves the same way: the request
becomes a payload v2.0 event, the Lambda proxy integration's function (alias weights drawn
per request) answers it through the local Lambda service (``runner.py``), and its result
becomes the HTTP response, as API Gateway translates it. Like API Gateway, it copies nothing
anywhere: shadow traffic is the serving function's own doing (``framework.runtime.shadow``:
an asynchronous ``Invoke`` of the shadow alias), on this target as on AWS.

HTTP itself (framing, keep-alive, chunked bodies, pipelining) is aiohttp's, a maintained server,
not code of this project; its parser answers 400 to any framing it cannot trust (a negative,
non-numeric, duplicate or listed ``Content-Length``, a bad chunk size, ``Content-Length`` with
``Transfer-Encoding``) before a handler runs. On top of it, what a public gateway must bound:

- methods: API Gateway's (``DELETE GET HEAD OPTIONS PATCH POST PUT``); any other, ``TRACE`` or
  a token the parser does not know, is a 405 with an ``Allow`` header;
- the order of checks, cheapest first, none reading the body: method, declared size (over
  Lambda's 6 MB payload: 413 ``{"message":"Request Entity Too Large"}``), route (404), IAM
  signature (403); then ``Expect: 100-continue`` is answered and the body read, at most 6 MB
  (a chunked body past it: 413). After a 413 the connection closes; until then what the
  client still sends is read and dropped, never kept, up to API Gateway's 10 MB request limit
  (``DISCARD_MAX``) for at most ``linger_s``, so that a client that writes its whole body
  before it reads sees the 413;
- time: a request's header must be complete ``header_timeout_s`` after its first byte, a
  kept-alive connection may stay idle ``idle_timeout_s``, a body must arrive within
  ``body_timeout_s`` of its header (408, closed); after an early answer the unread body is
  discarded for at most ``linger_s``;
- connections: at most ``max_connections`` open (the daemon also keeps it below its descriptor
  limit); past it a new connection closes the oldest one with no request in progress. No
  thread is spent on a connection.

``MLOPS_LOCAL_HEADER_TIMEOUT_S``, ``MLOPS_LOCAL_IDLE_TIMEOUT_S``, ``MLOPS_LOCAL_BODY_TIMEOUT_S``
and ``MLOPS_LOCAL_MAX_CONNECTIONS`` change these bounds (``Limits.from_env``).

Internal endpoints:

- ``GET /_mlops/health`` → 200 JSON;
- ``POST /_mlops/refresh`` → reload routes and forget cached alias resolution (the deployer
  calls it after each deploy); otherwise routes are reloaded at most every 2 seconds;
- ``POST /_mlops/flush`` → ship what functions have logged (log groups, subscriptions) and
  deliver what the local Firehose buffers, now (its buffer interval elapses; tests, CLI);
- ``GET /_mlops/workers`` → the pids of the execution environments;
- ``GET /_mlops/events`` → the newest asynchronous invocations (``InvocationType: Event``) by
  request id: function, attempts, ``queued``/``succeeded``/``failed``/``expired``, last error;
- ``GET /metrics`` → Prometheus text (see ``metrics.py``);
- routes the daemon registers in ``Gateway.admin`` (the scheduler's clock: see ``admin.py``);
  ``Gateway.on_refresh`` hooks also run on ``POST /_mlops/refresh``.

Routes with ``AuthorizationType: AWS_IAM`` require a SigV4 ``Authorization`` header (403
otherwise, like API Gateway). Locally its structure, service and date are checked, not the
signature itself: moto accepts any credentials, so there is no secret to check it against.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

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
from .runner import Runner

log = logging.getLogger(__name__)

MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous payload limit
DISCARD_MAX = 10 * 1024 * 1024  # API Gateway's request limit: what a refused body may still send
METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")  # API Gateway's
_ALLOW = ", ".join(METHODS)
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


_LIMIT_VARS = (("header_timeout_s", "MLOPS_LOCAL_HEADER_TIMEOUT_S"),
               ("idle_timeout_s", "MLOPS_LOCAL_IDLE_TIMEOUT_S"),
               ("body_timeout_s", "MLOPS_LOCAL_BODY_TIMEOUT_S"),
               ("max_connections", "MLOPS_LOCAL_MAX_CONNECTIONS"))


@dataclasses.dataclass(frozen=True)
class Limits:
    """The gateway's bounds on what one client can hold (see the module's docstring)."""

    header_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    body_timeout_s: float = 30.0
    max_connections: int = 10_000
    linger_s: float = 2.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Limits:
        """The defaults, with what the ``MLOPS_LOCAL_*`` variables set (each > 0)."""
        values: dict[str, Any] = {}
        for name, var in _LIMIT_VARS:
            raw = environ.get(var, "").strip()
            if not raw:
                continue
            kind = int if name == "max_connections" else float
            try:
                value = kind(raw)
            except ValueError:
                value = 0
            if not value > 0:
                raise ValueError(f"{var}={raw!r} is not a positive {kind.__name__}")
            values[name] = value
        return cls(**values)


class _Open:
    """The gateway's open connections, oldest first, at most ``bound``."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._conns: dict[_Connection, None] = {}

    def add(self, conn: _Connection) -> None:
        self._conns[conn] = None
        if len(self._conns) > self.bound:
            # The oldest connection with no request in progress (stalled in its header, or
            # idle), else the newcomer: a bound that an idle crowd cannot turn into a refusal.
            victim = next((c for c in self._conns if not c.busy), conn)
            self.discard(victim)
            victim.force_close()

    def discard(self, conn: _Connection) -> None:
        self._conns.pop(conn, None)


class _Connection(web.RequestHandler):
    """aiohttp's HTTP/1.1 connection, with a header timeout and a place among the bounded open
    connections. ``busy`` while the gateway handles one of its requests."""

    __slots__ = ("_body", "_header_timeout_s", "_header_timer", "_open", "busy")

    def __init__(self, manager: web.Server, open_: _Open, limits: Limits,
                 loop: asyncio.AbstractEventLoop) -> None:
        # auto_decompress off: API Gateway hands a gzip body to the function as it came.
        super().__init__(manager, loop=loop, keepalive_timeout=limits.idle_timeout_s,
                         lingering_time=limits.linger_s, auto_decompress=False,
                         access_log=None)  # type: ignore[arg-type]
        self._open = open_
        self._header_timeout_s = limits.header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # of the request being handled
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._open.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._open.discard(self)
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._body is not None and not self._body.is_eof() and _parse_failed(self):
            # The body's framing broke (a bad chunk size after the header): aiohttp queues
            # the parser's error as the next request and leaves this body waiting; fail it.
            self._body.set_exception(RequestPayloadError("the body's framing is invalid"))
        # Bytes while no request is being handled are (part of) a request's header: it has
        # header_timeout_s from its first byte to be complete, however slowly it trickles.
        if not self.busy and self._header_timer is None and self.transport is not None:
            self._header_timer = asyncio.get_running_loop().call_later(
                self._header_timeout_s, self._header_timed_out)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self.busy:
            log.debug("closing a connection whose request header is incomplete")
            self.force_close()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def started(self, request: web.BaseRequest) -> None:
        self.busy = True
        self._body = request.content
        self._stop_header_timer()

    def finished(self) -> None:
        self.busy = False
        self._body = None

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """What the parser or an escaped error answers: API Gateway's JSON shape, and 405 (with
        ``Allow``) for a method the parser does not know; the connection closes."""
        if status >= 500 and not isinstance(exc, ConnectionError):
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        else:
            log.debug("bad request from %s: %s", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; it cannot become an error")
        headers: list[tuple[str, str]] = []
        if isinstance(exc, BadHttpMethod):
            status, headers = 405, [("allow", _ALLOW)]
        out = _web_response(status_response(status, headers))
        out.force_close()
        return out


def _parse_failed(conn: web.RequestHandler) -> bool:
    """Whether the parser's last word on this connection is an error (queued by aiohttp)."""
    queued: Any = getattr(conn, "_messages", None)
    return bool(queued) and isinstance(getattr(queued[-1][0], "exc", None), HttpProcessingError)


class Gateway:
    """Route table cache + request handling, served by ``start``."""

    def __init__(
        self,
        runner: Runner,
        control_url: str,
        regions: Callable[[], list[str]],
        info: dict[str, Any] | None = None,
        flush: Flush | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.runner = runner
        self.limits = limits or Limits()
        self.open = _Open(self.limits.max_connections)
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
        if path == "/_mlops/events" and method == "GET":
            return json_response(200, {"events": dict(self.runner.events)})
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
        conn = request.protocol
        if isinstance(conn, _Connection):
            conn.started(request)
        try:
            response, unread = await self._respond(request), False
        except _Unread as early:
            response, unread = early.response, True
        finally:
            if isinstance(conn, _Connection):
                conn.finished()
        out = _web_response(response)
        if unread:  # answered now, then closed: the rest of the body is never kept
            out.force_close()
            with contextlib.suppress(ConnectionError):
                await out.prepare(request)
                await out.write_eof()
                if response.status == 413 and "expect" not in request.headers:
                    await self._discard(request)
            conn.force_close()
        return out

    async def _discard(self, request: web.BaseRequest) -> None:
        """Drop what follows a refused body, at most ``DISCARD_MAX`` bytes for ``linger_s``: a
        client that sends its whole body before reading (most do) then reads the 413."""
        left = DISCARD_MAX
        with contextlib.suppress(TimeoutError, RequestPayloadError, HttpProcessingError):
            async with asyncio.timeout(self.limits.linger_s):
                while left > 0 and (chunk := await request.content.readany()):
                    left -= len(chunk)

    async def _respond(self, request: web.BaseRequest) -> HttpResponse:
        method, path, query = request.method, request.raw_path.partition("?")[0], \
            request.query_string
        if method not in METHODS:
            return status_response(405, [("allow", _ALLOW)])
        if path == "/_mlops/health":
            return json_response(200, {"status": "ok", **self.info})
        if path.startswith("/_mlops/") or path == "/metrics":
            admin = self.admin.get(path)
            if admin is None:
                return await asyncio.to_thread(self.internal, method, path)
            return await asyncio.to_thread(admin, method, query, await self._body(request))
        request_id = str(uuid.uuid4())
        try:
            response = await self._route(request, path, query, request_id)
        except _Unread as early:
            raise _Unread(_tagged(early.response, request_id)) from None
        return _tagged(response, request_id)

    async def _body(self, request: web.BaseRequest) -> bytes:
        """The body, within Lambda's payload limit and the body timeout (``_Unread`` else)."""
        expect = request.headers.get("expect")
        if expect is not None:
            if expect.strip().lower() != "100-continue":
                raise _Unread(status_response(417))
            if request.version >= (1, 1):
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                return await _read_body(request)
        except TimeoutError:
            raise _Unread(status_response(408)) from None
        except (RequestPayloadError, HttpProcessingError):  # framing broken within the body
            raise _Unread(status_response(400)) from None

    async def _route(self, request: web.BaseRequest, path: str, query: str,
                     request_id: str) -> HttpResponse:
        if (request.content_length or 0) > MAX_BODY:
            raise _Unread(status_response(413))
        method = request.method
        api_id, _, rest = path.lstrip("/").partition("/")
        table = await self.table()
        raw_path = path  # the mapping key (the API id) stays in it, as on a custom domain
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
        body = await self._body(request)
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
        elif result.throttled:  # Lambda's 429 is an integration failure to API Gateway
            log.info("throttled: %s (reserved concurrency in use)", route.function_uri)
            response = json_response(500, {"message": "Internal Server Error"})
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
        kind = ("timeout" if result.timed_out else "throttle" if result.throttled
                else "function" if result.error is not None
                else "server" if status >= 500 else "client" if status >= 400 else None)
        self.metrics.request(result.endpoint or route.function_uri, result.executed_version,
                             status, time.perf_counter() - started, result.cold_start, kind,
                             None if result.init_ms is None else result.init_ms / 1000)
        return response

    async def start(self, host: str, port: int) -> None:
        """Serve on ``host:port`` (on the runner's loop)."""
        # The daemon's long-lived objects (moto's state, replayed journal) would otherwise be
        # traversed by every full collection, a pause of milliseconds on the request path.
        gc.collect()
        gc.freeze()
        loop = asyncio.get_running_loop()
        server = self._web = web.Server(self.handle, access_log=None)

        def connection() -> _Connection:
            return _Connection(server, self.open, self.limits, loop)

        self._site = await loop.create_server(connection, host, port, backlog=1024,
                                              reuse_address=True)

    async def stop(self) -> None:
        if self._site is not None:
            self._site.close()
            self._site = None
        if self._web is not None:
            await self._web.shutdown(1.0)  # requests in flight finish, idle connections close
            self._web = None


async def _read_body(request: web.BaseRequest) -> bytes:
    """The body; past Lambda's 6 MB, ``_Unread`` (413) before reading more."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(1 << 16):
        size += len(chunk)
        if size > MAX_BODY:
            raise _Unread(status_response(413))
        chunks.append(chunk)
    return b"".join(chunks)


class _Unread(Exception):
    """An answer given before the body was read in full: sent, then the connection closes."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status)
        self.response = response


_MESSAGES = {413: "Request Entity Too Large"}  # API Gateway's words where Python's differ


def status_response(status: int, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    """API Gateway's own answer for a status: ``{"message": <reason>}``."""
    message = _MESSAGES.get(status) or HTTPStatus(status).phrase
    response = json_response(status, {"message": message})
    return HttpResponse(status, [*response.headers, *(headers or [])], response.body)


def _tagged(response: HttpResponse, request_id: str) -> HttpResponse:
    return HttpResponse(response.status, [*response.headers, ("apigw-requestid", request_id)],
                        response.body)


def _web_response(response: HttpResponse) -> web.Response:
    out = web.Response(status=response.status, body=response.body)
    for name, value in response.headers:
        out.headers.add(name, value)
    return out

