"""One endpoint's request handling, configured from the function environment.

Routes of an endpoint (all on the same function; the event's ``routeKey`` says which):

| route                              | answer                                      |
|------------------------------------|---------------------------------------------|
| ``<METHOD> <path>``                | native predictions (GET: the model contract) |
| ``POST <path>/feedback``           | 202, labels logged for ``feedback/``        |
| ``GET <path>/openapi.json``        | the OpenAPI 3 document                      |
| ``POST /v2/models/<ep>/infer``     | Open Inference Protocol v2                  |
| ``GET /v2/models/<ep>[/ready]``    | OIP metadata / readiness                    |
| ``GET /v2/health/live|ready``      | OIP server probes (first endpoint; no key)  |
| ``GET /v2``                        | OIP server metadata (first endpoint)        |

Environment: ``MLOPS_REGISTRY_BUCKET``, ``MLOPS_MODEL_NAME``, ``MLOPS_MODEL_VERSION``,
``MLOPS_MODEL_SHA256``, ``MLOPS_ENDPOINT``; optional ``MLOPS_ROUTE``, ``MLOPS_AUTH``
(none | api_key | iam — iam is enforced by API Gateway), ``MLOPS_MAX_BATCH_ROWS``,
``MLOPS_CAPTURE_SAMPLE_RATE``, ``MLOPS_CAPTURE_SINK`` (``log``: captured rows are log lines
on stdout; ``off``), ``MLOPS_METRICS_SINK`` (``emf``, the default: one metrics line per
request; ``off``), ``MLOPS_SHADOW_TARGET`` and ``MLOPS_SHADOW_SAMPLE_RATE`` (shadow traffic:
see ``framework.runtime.shadow``).

Each request writes one structured JSON log line to stdout (CloudWatch Logs on AWS, shipped by
the local runner otherwise), preceded by its CloudWatch metrics in Embedded Metric Format
(``framework.runtime.emf``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any, ClassVar

import framework
from framework.runtime import (
    auth,
    capture,
    emf,
    feedback,
    http,
    oip,
    oip_binary,
    openapi,
    shadow,
)
from framework.runtime.clients import Connection
from framework.runtime.errors import ModelUnavailableError, RequestError
from framework.runtime.features import DEFAULT_MAX_ROWS, Rows, parse_payload
from framework.runtime.inference import ModelBundle, Prediction, PredictionText

V2 = "/v2/models/"
# OIP v2 server routes (compiled onto the project's first endpoint); probes need no key.
SERVER_ROUTES = {"/v2/health/live": "oip_live", "/v2/health/ready": "oip_server_ready",
                 "/v2": "oip_server"}
OPEN_KINDS = frozenset({"oip_live", "oip_server_ready"})
CAPTURE_SINKS = ("log", "off")


@dataclass(frozen=True)
class Settings:
    bucket: str
    model: str
    version: str
    sha256: str
    endpoint: str
    route: str
    auth: str
    max_rows: int
    sample_rate: float
    sink: str
    lambda_version: str
    metrics: str = "emf"
    shadow_target: str = ""  # the shadow alias (or version) ARN copies go to
    shadow_rate: float = 0.0  # the share of answered predictions copied there
    function: str = ""  # the Lambda function's name (its metrics' dimension), else endpoint

    ENV: ClassVar[tuple[str, ...]] = (
        "MLOPS_REGISTRY_BUCKET", "MLOPS_MODEL_NAME", "MLOPS_MODEL_VERSION", "MLOPS_MODEL_SHA256",
        "MLOPS_ENDPOINT", "AWS_LAMBDA_FUNCTION_NAME", "MLOPS_ROUTE", "MLOPS_AUTH",
        "MLOPS_MAX_BATCH_ROWS", "MLOPS_CAPTURE_SAMPLE_RATE", "MLOPS_CAPTURE_SINK",
        "AWS_LAMBDA_FUNCTION_VERSION", "MLOPS_METRICS_SINK", "MLOPS_SHADOW_TARGET",
        "MLOPS_SHADOW_SAMPLE_RATE")  # everything from_env reads

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        try:
            bucket, model, version = (env[n] for n in (
                "MLOPS_REGISTRY_BUCKET", "MLOPS_MODEL_NAME", "MLOPS_MODEL_VERSION"))
            max_rows = int(env.get("MLOPS_MAX_BATCH_ROWS") or DEFAULT_MAX_ROWS)
            rate = float(env.get("MLOPS_CAPTURE_SAMPLE_RATE") or 0.0)
            shadow_rate = float(env.get("MLOPS_SHADOW_SAMPLE_RATE") or 0.0)
        except (KeyError, ValueError) as e:
            raise ModelUnavailableError(f"function environment is incomplete or invalid: {e}"
                                        ) from e
        sink = env.get("MLOPS_CAPTURE_SINK") or "off"
        if sink not in CAPTURE_SINKS:
            raise ModelUnavailableError(f"MLOPS_CAPTURE_SINK must be one of "
                                        f"{', '.join(CAPTURE_SINKS)}, not {sink!r}")
        metrics = env.get("MLOPS_METRICS_SINK") or "emf"
        if metrics not in emf.SINKS:
            raise ModelUnavailableError(f"MLOPS_METRICS_SINK must be one of "
                                        f"{', '.join(emf.SINKS)}, not {metrics!r}")
        return cls(
            bucket=bucket, model=model, version=version,
            sha256=env.get("MLOPS_MODEL_SHA256", ""),
            endpoint=env.get("MLOPS_ENDPOINT") or env.get("AWS_LAMBDA_FUNCTION_NAME", model),
            route=env.get("MLOPS_ROUTE", ""), auth=env.get("MLOPS_AUTH") or "none",
            max_rows=max_rows, sample_rate=rate if sink != "off" else 0.0, sink=sink,
            lambda_version=env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"), metrics=metrics,
            shadow_target=env.get("MLOPS_SHADOW_TARGET") or "",
            shadow_rate=min(max(shadow_rate, 0.0), 1.0) if math.isfinite(shadow_rate) else 0.0,
            function=env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
        )


def route_kind(route_key: str, method: str, native_path: str) -> str:
    """Which of the endpoint's routes an event is for."""
    _, _, template = route_key.partition(" ")
    server = SERVER_ROUTES.get(template)
    if server is not None:
        return server
    if template.startswith(V2):
        tail = template[len(V2):].partition("/")[2]
        return {"": "oip_metadata", "ready": "oip_ready", "infer": "oip_infer"}.get(
            tail, "unknown")
    if native_path and template == native_path:
        return "predict"
    if template.endswith("/openapi.json"):
        return "openapi"
    if template.endswith("/feedback"):
        return "feedback"
    return "predict"


class Service:
    """Lazily loaded model + auth + capture for one endpoint (one per worker)."""

    def __init__(self, settings: Settings, conn: Connection | None = None) -> None:
        self.s = settings
        self.conn = conn or Connection.from_env()
        self._bundle: ModelBundle | None = None
        self._lines: tuple[ModelBundle, capture.LineFormat] | None = None
        self._native_path = settings.route.partition(" ")[2]
        self._log_model = (f',"model":{_json(settings.model)},"version":{_json(settings.version)},'
                           f'"lambda_version":{_json(settings.lambda_version)},"rows":')
        self._log_endpoint = f',"msg":"request","endpoint":{_json(settings.endpoint)},"route":'
        self._metrics = (emf.MetricLine(settings.function or settings.endpoint,
                                       settings.endpoint, settings.version)
                         if settings.metrics == "emf" else None)
        self._scores: emf.Summary | None = None  # the prediction summary of this request
        self._labels: list[Any] | None = None  # the predictions of this request
        self._shadowing: shadow.Marker | None = None  # set while answering a shadow copy
        self.mirror: shadow.Mirror | None = None
        if settings.shadow_target and settings.shadow_rate > 0:
            self.mirror = shadow.Mirror(settings.shadow_target, settings.shadow_rate,
                                        settings.lambda_version, self._shadow_client)
        self.keys: auth.KeyChecker | None = None
        if settings.auth == "api_key":
            ttl = float(os.environ.get("MLOPS_KEY_CACHE_S") or 5.0)
            self.keys = auth.KeyChecker(settings.endpoint, self._fetch_key, ttl)
        self.invocations = 0

    def _shadow_client(self) -> Any:
        """The Lambda client copies are sent with: short timeouts, one retry (a copy that
        cannot be handed to Lambda quickly is not worth holding the next ones)."""
        c = self.conn
        return Connection(c.region, c.endpoint_url, c.profile, c.dummy_credentials,
                          max_attempts=2, connect_timeout=2.0, read_timeout=5.0
                          ).client("lambda")

    def _fetch_key(self, key: str) -> dict[str, Any] | None:
        try:
            return auth.s3_fetch(self.conn.client("s3"), self.s.bucket)(key)
        except Exception as e:
            raise ModelUnavailableError(f"cannot read API keys: {e}") from e

    @property
    def bundle(self) -> ModelBundle:
        if self._bundle is None:
            s = self.s
            self._bundle = ModelBundle.load(self.conn, s.bucket, s.model, s.version, s.sha256,
                                            max_rows=s.max_rows)
        return self._bundle

    # -- one request ----------------------------------------------------------------------
    def handle(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        ts = time.time()
        cold = self.invocations == 0
        self.invocations += 1
        request_id = getattr(context, "aws_request_id", None)
        kind = "unknown"
        rows = 0
        key_id = None
        self._scores = None
        self._labels = None
        mark = self._shadowing = shadow.marker(event) if shadow.KEY in event else None
        if mark is not None:
            request_id = mark.request_id or request_id
        try:
            request = http.parse_event(event)
            if mark is None:
                request_id = request.request_id or request_id
            kind = route_kind(str(event.get("routeKey") or ""), request.method,
                              self._native_path)
            if self.keys is not None and kind not in OPEN_KINDS:
                key_id = self.keys.check(request.headers)
            body, status, rows = self._dispatch(kind, request, request_id, ts, t0)
            response = (http.binary_response(status, body) if type(body) is http.Binary
                        else http.json_response(status, body))
        except RequestError as e:
            response = http.error_response(e, request_id)
        except ModelUnavailableError as e:
            print(f"[mlops] MODEL UNAVAILABLE ({type(e).__name__}): {e}", file=sys.stderr,
                  flush=True)
            body = {"error": "model_unavailable", "message": "the model cannot be served now"}
            response = http.json_response(503, {**body, "request_id": request_id})
        except Exception:
            traceback.print_exc(file=sys.stderr)
            body = {"error": "internal_error", "message": "unexpected error; see the logs"}
            response = http.json_response(500, {**body, "request_id": request_id})
        latency_ms = (time.perf_counter() - t0) * 1000
        # What a client reads about the answer comes from here, so it is the same on AWS.
        response["headers"].update({
            "x-mlops-executed-version": self.s.lambda_version,
            "x-mlops-cold-start": "true" if cold else "false",
            "x-mlops-request-id": str(request_id or "")})
        status = response["statusCode"]
        if mark is not None:  # a copy: compared with the primary's answer, never counted
            self._shadow_log(mark, status, latency_ms, ts)
            return response
        self._log(kind, status, request_id, rows, latency_ms, cold, key_id, ts)
        mirror = self.mirror
        if mirror is not None and status == 200 and kind in ("predict", "oip_infer") \
                and self._labels is not None and request_id:
            mirror.offer(event, str(request_id), self.s.version, self._labels)
        return response

    def _shadow_log(self, mark: shadow.Marker, status: Any, latency_ms: float,
                    ts: float) -> None:
        """A shadow copy's lines: how its answer compares with the primary's, as a log line
        and (unless metrics are off) an EMF line of the Shadow* metrics."""
        s = self.s
        answered = status == 200 and self._labels is not None
        regression = answered and self._bundle is not None and self._bundle.task == "regression"
        compared, disagreed = shadow.disagreements(
            mark.predictions, self._labels if answered else None, regression)
        out = sys.stdout
        if self._metrics is not None:
            out.write(shadow.metric_line(ts, s.function or s.endpoint, s.endpoint, s.version,
                                         error=not answered,
                                         compared=compared, disagreed=disagreed))
        out.write(shadow.log_line(endpoint=s.endpoint, mark=mark, model=s.model,
                                  model_version=s.version, lambda_version=s.lambda_version,
                                  status=status if type(status) is int else 500,
                                  compared=compared, disagreed=disagreed,
                                  latency_ms=latency_ms))
        out.flush()

    def _dispatch(self, kind: str, request: http.Request, request_id: str | None, ts: float,
                  t0: float) -> tuple[Any, int, int]:
        s = self.s
        method = request.method
        if kind in ("predict", "oip_infer") and method == "POST":
            tail = None
            if kind == "predict":
                payload = http.json_body(request)
            else:
                payload, tail = oip_binary.read_body(request)
            bundle = self.bundle
            body: Any
            if kind == "predict":
                rows = parse_payload(payload, bundle.features, bundle.max_rows)
                prediction = bundle.run(rows)
                text = bundle.texts(prediction)
                answer = None if text is None else bundle.answer_json(text, request_id)
                body = (bundle.answer(prediction, request_id) if answer is None
                        else http.Encoded(answer))
            else:
                rows, oip_id, wanted = oip.parse_request(payload, bundle.features,
                                                         bundle.max_rows, tail)
                prediction = bundle.run(rows)
                text = None  # encoded only if captured
                body = oip.response(bundle, s.endpoint, prediction, oip_id, request_id, wanted)
                binary = oip.binary_outputs(payload, [o["name"] for o in body["outputs"]])
                if binary:
                    body = oip_binary.binary_answer(body, binary)
            self._labels = prediction.labels
            self._capture(request_id or "", ts, t0, rows, prediction, text)
            if self._metrics is not None:
                self._scores = emf.summary(bundle.task, prediction.labels,
                                           prediction.probabilities, prediction.classes)
            return body, 200, len(rows)
        if kind == "predict" and method == "GET":
            return self.bundle.info(), 200, 0
        if kind == "feedback" and method == "POST":
            return self._feedback(http.json_body(request), ts, request_id or ""), 202, 0
        if kind == "openapi" and method == "GET":
            return self._openapi(request), 200, 0
        if kind == "oip_metadata" and method == "GET":
            return oip.metadata(self.bundle, s.endpoint), 200, 0
        if kind == "oip_ready" and method == "GET":
            ready = self.bundle is not None
            return {"name": s.endpoint, "ready": ready}, 200, 0
        if kind == "oip_live" and method == "GET":
            return {"live": True}, 200, 0
        if kind == "oip_server_ready" and method == "GET":
            _ = self.bundle  # a model that cannot load answers 503
            return {"ready": True}, 200, 0
        if kind == "oip_server" and method == "GET":
            return {"name": "mlops", "version": framework.__version__,
                    "extensions": ["binary_tensor_data"]}, 200, 0
        if kind == "unknown":
            raise RequestError(404, "not_found", "no such route on this endpoint")
        allowed = "POST" if kind in ("oip_infer", "feedback") else "GET"
        raise RequestError(405, "method_not_allowed", f"use {allowed} on this route")

    def _capture(self, request_id: str, ts: float, t0: float, rows: Rows,
                 prediction: Prediction, text: PredictionText | None) -> None:
        """Write the request's capture lines to the function's log (every target)."""
        s = self.s
        if not s.sample_rate or not capture.sampled(request_id, s.sample_rate):
            return
        bundle = self.bundle
        latency_ms = (time.perf_counter() - t0) * 1000
        time_text = capture.iso_utc(ts)
        if text is None:
            text = bundle.texts(prediction)
        lines = None if text is None else self._line_format(bundle).lines(
            request_id, time_text, latency_ms, rows, text)
        if lines is None:
            lines = capture.capture_lines(
                request_id=request_id, ts=ts, endpoint=s.endpoint, model=bundle.name,
                version=bundle.version, lambda_version=s.lambda_version, latency_ms=latency_ms,
                features=bundle.features, rows=rows, prediction=prediction)
        if self._shadowing is not None:  # a shadow's rows: marked, with the primary's id
            lines = shadow.mark_capture(lines, self._shadowing.version)
        # One log line per row on stdout: durable in the function's log before the answer
        # leaves, no network call on the request path. The log group's subscription filter
        # (``{ $.msg = "capture" }``) hands them to the endpoint's Firehose stream.
        out = sys.stdout
        out.write(lines)
        out.flush()

    def _line_format(self, bundle: ModelBundle) -> capture.LineFormat:
        """The capture line format of ``bundle`` (built on its first captured request)."""
        if self._lines is None or self._lines[0] is not bundle:
            self._lines = (bundle, capture.LineFormat(
                endpoint=self.s.endpoint, model=bundle.name, version=bundle.version,
                lambda_version=self.s.lambda_version, features=bundle.features))
        return self._lines[1]

    def _feedback(self, payload: Any, ts: float, request_id: str) -> dict[str, Any]:
        """Labels as log lines (``framework.runtime.feedback``): the feedback stream takes
        them from the function's log, in batches."""
        if self.s.sink != "log":
            raise RequestError(409, "feedback_not_collected",
                               "this endpoint captures no predictions, so there is nothing to "
                               "join labels to; give it capture: {sample_rate: 1.0} in "
                               "mlops.yaml and deploy")
        classes = None
        with contextlib.suppress(ModelUnavailableError):
            classes = self.bundle.classes
        items = feedback.parse_feedback(payload, classes)
        out = sys.stdout  # accepted once written: the answer leaves after the flush
        out.write(feedback.feedback_lines(items, ts, self.s.endpoint))
        out.flush()
        return {"accepted": len(items), "request_id": request_id}

    def _openapi(self, request: http.Request) -> dict[str, Any]:
        b = self.bundle
        s = self.s
        suffix = s.route.partition(" ")[2] + "/openapi.json"
        base = request.path[: -len(suffix)] if request.path.endswith(suffix) else ""
        host = request.headers.get("host", "")
        proto = request.headers.get("x-forwarded-proto", "https")
        server = f"{proto}://{host}{base}" if host else base or "/"
        return openapi.document(endpoint=s.endpoint, route=s.route or "POST /", model=b.name,
                                version=b.version, task=b.task, features=b.features,
                                classes=b.classes, max_rows=b.max_rows, auth=s.auth,
                                server_url=server)

    def _log(self, kind: str, status: int, request_id: str | None, rows: int,
             latency_ms: float, cold: bool, key_id: str | None, ts: float) -> None:
        latency = capture.ms_text(latency_ms)
        # the request's metrics (EMF) first, in the same write: the request line stays last
        metrics = ("" if self._metrics is None or type(status) is not int
                   else self._metrics.line(ts, status, latency, self._scores))
        if (type(status) is int and type(rows) is int and "n" not in latency
                and (request_id is None or type(request_id) is str)
                and (key_id is None or type(key_id) is str)):
            # the JSON of the record below, with the constant parts encoded once
            sys.stdout.write(
                metrics + ('{"level":"ERROR"' if status >= 500 else '{"level":"INFO"')
                + self._log_endpoint + encode_basestring_ascii(kind)
                + ',"status":' + repr(status)
                + ',"request_id":'
                + ("null" if request_id is None else encode_basestring_ascii(request_id))
                + self._log_model + repr(rows) + ',"latency_ms":' + latency
                + (',"cold_start":true' if cold else ',"cold_start":false')
                + (',"key_id":' + encode_basestring_ascii(key_id) if key_id else "")
                + "}\n")
            return
        record = {"level": "ERROR" if status >= 500 else "INFO", "msg": "request",
                  "endpoint": self.s.endpoint, "route": kind, "status": status,
                  "request_id": request_id, "model": self.s.model, "version": self.s.version,
                  "lambda_version": self.s.lambda_version, "rows": rows,
                  "latency_ms": round(latency_ms, 3), "cold_start": cold}
        if key_id:
            record["key_id"] = key_id
        sys.stdout.write(metrics + json.dumps(record, separators=(",", ":")) + "\n")


_json = json.JSONEncoder(separators=(",", ":")).encode
