"""Shadow traffic, the same on every target: the serving function copies a sample of the
requests it answered to the endpoint's shadow version, and the shadow compares its answers
with the primary's.

Environment (compiled from an endpoint whose ``rollout.strategy`` is ``shadow``):

- ``MLOPS_SHADOW_TARGET``: the qualified ARN of the function's ``shadow`` alias (a version ARN
  works too). A shadow rollout points that alias at the candidate while it runs; when it does
  not exist, or points at the version that is serving, nothing is sent.
- ``MLOPS_SHADOW_SAMPLE_RATE``: the share of answered prediction requests copied (0-1),
  decided by a hash of the request id as capture sampling is.

**Primary side** (``Mirror``). After the handler built and logged its answer (status 200 on
the native or the OIP v2 prediction route), it hands the request's event, its request id and
its predictions to a queue (``Mirror.offer``: a hash, a small dict and a ``put_nowait``; no
I/O). A background thread sends each copy with Lambda's ``Invoke``
(``InvocationType=Event``: Lambda queues it and answers 202) to ``MLOPS_SHADOW_TARGET``. It
reads the shadow alias (``GetAlias``) at most every ``ALIAS_TTL_S`` seconds, so copies stop
when the alias is gone or serves the primary's own version. A full queue drops the copy (the
answer never waits), and an event over Lambda's 1 MB asynchronous payload is not sent: the
shadow is a sample. Lambda freezes an execution environment between invocations: a copy
still in the queue then is sent when the environment thaws (its next request), or lost when
Lambda retires it.

**Shadow side**. An event with a ``mlops_shadow`` member is a copy: the handler answers it as
any request (the answer goes nowhere: Lambda drops the result of an asynchronous invocation)
and then, instead of its request line and request metrics, writes

- its capture lines marked ``"shadow": true`` with ``primary_version`` (the primary's Lambda
  version) and the primary's ``request_id`` (so feedback labels join them too);
- one ``"msg": "shadow"`` log line: the primary's and its own versions, the rows compared and
  how many disagreed;
- one EMF line (namespace ``mlops``, dimensions FunctionName + ModelVersion, the shadow's model
  version): ``ShadowRequests`` (1), ``ShadowErrors`` (1 when it did not answer 200 a request
  the primary answered), ``ShadowCompared`` (rows compared) and ``ShadowDisagreement`` (rows
  whose prediction differs). The disagreement rate is Sum(ShadowDisagreement) /
  Sum(ShadowCompared). Classifiers disagree on a row when the labels differ; regressors when
  the predictions differ beyond float32 noise (``REL_TOL``).

Stdlib only, plus boto3 (in the layer), imported by the sending thread.
"""

from __future__ import annotations

import json
import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from framework.runtime.capture import ms_text, sampled

KEY = "mlops_shadow"  # the event member that marks a copy
ALIAS_TTL_S = 30.0  # how long a read of the shadow alias is trusted
QUEUE_SIZE = 64  # copies waiting to be sent; more are dropped
MAX_EVENT_BYTES = 1_048_576  # Lambda's payload limit for an asynchronous invocation
REL_TOL = 1e-6  # regressors: predictions closer than this (relatively) agree
NAMESPACE = "mlops"  # framework.runtime.emf's
METRICS = (("ShadowRequests", "Count"), ("ShadowErrors", "Count"),
           ("ShadowCompared", "Count"), ("ShadowDisagreement", "Count"))


@dataclass(frozen=True)
class Marker:
    """What a copy carries about the primary's answer."""

    request_id: str
    version: str  # the primary's Lambda version
    model_version: str
    predictions: list[Any] | None  # None when the event did not say (compared: 0)


def copy_event(event: Mapping[str, Any], *, request_id: str, version: str,
               model_version: str, predictions: Sequence[Any]) -> dict[str, Any]:
    """The event a shadow receives: the primary's, marked with what it answered."""
    return {**event, KEY: {"request_id": request_id, "version": version,
                           "model_version": model_version, "predictions": list(predictions)}}


def marker(event: Mapping[str, Any]) -> Marker | None:
    """The mark of a copy, or None for a request from a client."""
    raw = event.get(KEY)
    if not isinstance(raw, dict):
        return None
    predictions = raw.get("predictions")
    return Marker(request_id=str(raw.get("request_id") or ""),
                  version=str(raw.get("version") or ""),
                  model_version=str(raw.get("model_version") or ""),
                  predictions=predictions if isinstance(predictions, list) else None)


def _same(a: Any, b: Any, regression: bool) -> bool:
    if regression and type(a) in (int, float) and type(b) in (int, float):
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=1e-9)
    return bool(a == b)


def disagreements(primary: Sequence[Any] | None, shadow: Sequence[Any] | None,
                  regression: bool = False) -> tuple[int, int]:
    """(rows compared, rows whose predictions differ); nothing is compared when either side
    has no predictions or they have different lengths."""
    if primary is None or shadow is None or len(primary) != len(shadow):
        return 0, 0
    differ = sum(1 for a, b in zip(primary, shadow, strict=True) if not _same(a, b, regression))
    return len(primary), differ


_DIRECTIVE = json.dumps([{"Namespace": NAMESPACE,
                          "Dimensions": [["FunctionName", "ModelVersion"]],
                          "Metrics": [{"Name": n, "Unit": u} for n, u in METRICS]}],
                        separators=(",", ":"))


def metric_line(ts: float, function: str, endpoint: str, model_version: str, *, error: bool,
                compared: int, disagreed: int) -> str:
    """The EMF line (with its newline) of one copy the shadow answered. Its dimension is the
    Lambda function's name, unique in an account and region, as ``framework.runtime.emf``'s
    (the endpoint's name rides along as a plain field)."""
    return ('{"_aws":{"Timestamp":' + repr(int(ts * 1000)) + ',"CloudWatchMetrics":'
            + _DIRECTIVE + '},"FunctionName":' + encode_basestring_ascii(function)
            + ',"Endpoint":' + encode_basestring_ascii(endpoint)
            + ',"ModelVersion":' + encode_basestring_ascii(model_version)
            + ',"ShadowRequests":1,"ShadowErrors":' + ("1" if error else "0")
            + ',"ShadowCompared":' + repr(compared) + ',"ShadowDisagreement":'
            + repr(disagreed) + "}\n")


def log_line(*, endpoint: str, mark: Marker, model: str, model_version: str,
             lambda_version: str, status: int, compared: int, disagreed: int,
             latency_ms: float) -> str:
    """The shadow's one log line for a copy (instead of a request line)."""
    record = {"level": "INFO" if status < 500 else "ERROR", "msg": "shadow",
              "endpoint": endpoint, "request_id": mark.request_id,
              "primary_version": mark.version, "primary_model_version": mark.model_version,
              "model": model, "version": model_version, "lambda_version": lambda_version,
              "status": status, "compared": compared, "disagreed": disagreed,
              "latency_ms": float(ms_text(latency_ms)) if math.isfinite(latency_ms) else None}
    return json.dumps(record, separators=(",", ":")) + "\n"


def mark_capture(lines: str, primary_version: str) -> str:
    """Capture lines (``{"msg":"capture",...}`` each) marked as the shadow's. The prefix
    cannot occur inside a value: quotes in JSON strings are escaped."""
    return lines.replace('{"msg":"capture",', '{"msg":"capture","shadow":true,'
                         '"primary_version":' + encode_basestring_ascii(primary_version) + ",")


def split_target(target: str) -> tuple[str, str]:
    """(function ARN or name, qualifier) of a qualified ARN ``...:function:NAME:QUALIFIER``."""
    head, _, qualifier = target.rpartition(":")
    if target.startswith("arn:") and target.count(":") == 7:
        return head, qualifier
    return target, ""


class Mirror:
    """Sends copies of answered requests to the shadow target from a background thread."""

    def __init__(self, target: str, rate: float, own_version: str,
                 client: Callable[[], Any], *, ttl_s: float = ALIAS_TTL_S,
                 queue_size: int = QUEUE_SIZE, clock: Callable[[], float] = time.monotonic,
                 ) -> None:
        self.target = target
        self.rate = rate
        self.own_version = own_version
        self.function, self.qualifier = split_target(target)
        self._client = client  # the Lambda client, made by the sending thread
        self._lam: Any = None
        self.ttl_s = ttl_s
        self._clock = clock
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._alias: tuple[float, str | None] | None = None  # (read at, shadow version)
        self._said: set[str] = set()  # problems already printed (once each)
        self.offered = self.sent = self.dropped = self.skipped = self.failed = 0

    # -- on the request path ---------------------------------------------------------------
    def offer(self, event: Mapping[str, Any], request_id: str, model_version: str,
              predictions: Sequence[Any]) -> bool:
        """Hand a copy to the sending thread (never waits); whether it was taken."""
        if not request_id or not sampled(request_id, self.rate):
            return False
        try:
            self._queue.put_nowait((event, request_id, model_version, predictions))
        except queue.Full:
            self.dropped += 1
            return False
        self.offered += 1
        if self._thread is None:
            self._start()
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mlops-shadow",
                                                daemon=True)
                self._thread.start()

    # -- the sending thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._send(*item)
            except Exception as exc:  # never let the thread die
                self.failed += 1
                self._say("send", f"shadow copy not sent: {type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()

    def _send(self, event: Mapping[str, Any], request_id: str, model_version: str,
              predictions: Sequence[Any]) -> None:
        if self.shadow_version() is None:
            self.skipped += 1
            return
        payload = json.dumps(copy_event(event, request_id=request_id,
                                        version=self.own_version, model_version=model_version,
                                        predictions=predictions),
                             separators=(",", ":")).encode()
        if len(payload) > MAX_EVENT_BYTES:
            self.skipped += 1
            self._say("size", f"shadow copy of {request_id} not sent: {len(payload)} bytes, "
                              f"over Lambda's {MAX_EVENT_BYTES} for an asynchronous invocation")
            return
        self.lam().invoke(FunctionName=self.target, InvocationType="Event", Payload=payload)
        self.sent += 1

    def lam(self) -> Any:
        if self._lam is None:
            self._lam = self._client()
        return self._lam

    def shadow_version(self) -> str | None:
        """The version the shadow target runs, or None when there is nothing to copy to (no
        shadow alias, or it serves this very version)."""
        if self.qualifier.isdigit():
            version: str | None = self.qualifier
        else:
            now = self._clock()
            cached = self._alias
            if cached is not None and now - cached[0] < self.ttl_s:
                version = cached[1]
            else:
                version = self._read_alias()
                self._alias = (now, version)
        return None if version in (None, self.own_version) else version

    def _read_alias(self) -> str | None:
        try:
            alias = self.lam().get_alias(FunctionName=self.function, Name=self.qualifier)
        except Exception as exc:  # ResourceNotFoundException: no shadow step running
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code != "ResourceNotFoundException":
                self._say("alias", f"shadow alias {self.target} unreadable: "
                                   f"{type(exc).__name__}: {exc}")
            return None
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        if weights:
            self._say("weights", f"shadow alias {self.target} has weights; copies go to "
                                 "whichever version Lambda draws")
        return str(alias.get("FunctionVersion") or "") or None

    def _say(self, what: str, text: str) -> None:
        if what not in self._said:
            self._said.add(what)
            sys.stderr.write(f"[mlops] {text}\n")
            sys.stderr.flush()

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every offered copy was handled (tests, benchmarks); whether it was."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True


MAX_POINTS = 1440  # datapoints GetMetricStatistics answers at most


def sums(cloudwatch: Any, function: str, model_version: str, since: Any,
         until: Any) -> dict[str, int]:
    """The Shadow* sums of ``function``'s copies answered by ``model_version`` from ``since``
    to ``until`` (aware datetimes), at the finest period CloudWatch answers for the span."""
    from datetime import timedelta

    begin = since.replace(second=0, microsecond=0)
    end = until.replace(microsecond=0) + timedelta(seconds=60)
    span = max((end - begin).total_seconds(), 60.0)
    period = max(60, int(math.ceil(span / MAX_POINTS / 60.0)) * 60)
    out = {}
    for metric, _unit in METRICS:
        got = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE, MetricName=metric, StartTime=begin, EndTime=end,
            Period=period, Statistics=["Sum"],
            Dimensions=[{"Name": "FunctionName", "Value": function},
                        {"Name": "ModelVersion", "Value": model_version}])
        out[metric] = int(round(sum(float(p.get("Sum") or 0.0)
                                    for p in got.get("Datapoints", []))))
    return out
