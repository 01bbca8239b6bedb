"""Admin routes the daemon adds to the gateway for the scheduler and the runner.

- ``GET /_mlops/clock`` → ``{"now", "offset_s"}``: the scheduler's clock;
- ``POST /_mlops/clock`` with ``{"advance": SECONDS}`` or ``{"to": ISO}`` (and ``"wait"``,
  default true) → moves the clock forward, re-reads the rules, fires what is due and, with
  ``wait``, answers once those invocations finished: ``{"now", "fires": [{"rule",
  "scheduled", "function", "ok", "error", "executed_version", "payload", ...}]}``. This is how
  tests see a daily monitor fire without waiting a day;
- ``GET /_mlops/schedules`` → every schedule rule with its anchor, last fire and next fire;

and ``InvokeMiddleware``: Lambda's ``Invoke`` API on the control plane, run by the local
Lambda service.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

from framework.errors import MlopsError

from .apigw import HttpResponse, json_response
from .journal import Environ, StartResponse, WSGIApp, json_answer, read_body
from .runner import THROTTLED, Runner
from .scheduler import Scheduler, iso, parse_iso

log = logging.getLogger(__name__)
AdminRoute = Callable[[str, str, bytes], HttpResponse]  # (method, query, body) -> response
WAIT_S = 900.0


def invoke_outcome(runner: Runner, function: str, qualifier: str | None,
                   event: Any) -> dict[str, Any]:
    """Invoke through the runner as an asynchronous invocation runs (a throttled event waits
    and is tried again); the outcome as JSON-ready data."""
    result = runner.invoke(function, qualifier, event, queued=True)
    error = result.error  # a timeout is one too (Sandbox.Timedout)
    return {"ok": error is None, "payload": result.payload, "error": error,
            "executed_version": result.executed_version, "request_id": result.request_id,
            "duration_ms": round(result.duration_ms, 1), "timed_out": result.timed_out}


def _body(body: bytes) -> dict[str, Any]:
    data = json.loads(body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def clock_route(scheduler: Scheduler) -> AdminRoute:
    def handle(method: str, _query: str, body: bytes) -> HttpResponse:
        clock = scheduler.clock
        if method == "GET":
            return json_response(200, {"now": iso(clock.now()),
                                       "offset_s": clock.offset.total_seconds()})
        if method != "POST":
            return json_response(405, {"message": "Method Not Allowed"})
        try:
            data = _body(body)
            scheduler.reload()  # rules created since the last read are anchored *before* the move
            if "to" in data:
                now = clock.set(parse_iso(str(data["to"])))
            else:
                now = clock.advance(float(data.get("advance", 0)))
        except (ValueError, TypeError) as e:
            return json_response(400, {"message": str(e)})
        fires = scheduler.tick(now)
        outcomes = ([f.outcome(WAIT_S) for f in fires] if data.get("wait", True)
                    else [f.outcome(0) if f.future and f.future.done() else
                          {"rule": f.rule.name, "scheduled": iso(f.scheduled), "pending": True}
                          for f in fires])
        return json_response(200, {"now": iso(now), "offset_s": clock.offset.total_seconds(),
                                   "fires": outcomes})

    return handle


def schedules_route(scheduler: Scheduler) -> AdminRoute:
    def handle(method: str, _query: str, _body: bytes) -> HttpResponse:
        if method != "GET":
            return json_response(405, {"message": "Method Not Allowed"})
        return json_response(200, {"now": iso(scheduler.clock.now()),
                                   "schedules": scheduler.schedules()})

    return handle


ASYNC_PAYLOAD_MAX = 1_048_576  # Lambda's limit for an asynchronous invocation's event
SYNC_PAYLOAD_MAX = 6_291_456  # ... and for a synchronous one's


class InvokeMiddleware:
    """Lambda's ``Invoke`` on the control plane (moto's own never runs code): the function runs
    on the local Lambda service and the answer is AWS's: the payload, with
    ``X-Amz-Executed-Version`` and, for an unhandled error, ``X-Amz-Function-Error`` and the
    error as the payload. ``InvocationType: Event`` checks the function and the event's size
    (1 MB), answers 202 with the invocation's ``x-amzn-RequestId`` and queues the event on
    the local Lambda service, which runs it and retries its function errors as Lambda does
    (``Runner.submit_event``)."""

    def __init__(self, app: WSGIApp, runner: Runner) -> None:
        self.app = app
        self.runner = runner

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        match = _INVOKE_PATH.match(str(environ.get("PATH_INFO") or ""))
        if match is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        function = unquote(match.group(1))
        qualifier = parse_qs(str(environ.get("QUERY_STRING") or "")).get("Qualifier", [None])[0]
        kind = str(environ.get("HTTP_X_AMZ_INVOCATION_TYPE") or "RequestResponse")
        body = read_body(environ) or b"{}"
        limit = ASYNC_PAYLOAD_MAX if kind == "Event" else SYNC_PAYLOAD_MAX
        if len(body) > limit:
            return json_answer(start_response, 413, {
                "Type": "User", "message": f"Request must be smaller than {limit} bytes for "
                "the InvokeFunction operation"},
                [("x-amzn-ErrorType", "RequestTooLargeException")])
        try:
            event = json.loads(body)
        except ValueError:
            return json_answer(start_response, 400, {"Type": "User", "message": "Could not parse "
                                                "request body into json"},
                          [("x-amzn-ErrorType", "InvalidRequestContentException")])
        if kind == "DryRun":
            return json_answer(start_response, 204, None, [])
        if kind == "Event":
            try:
                request_id = self.runner.submit_event(function, qualifier, event)
            except MlopsError as e:
                return json_answer(start_response, 404, {"Type": "User", "message": str(e)},
                                   [("x-amzn-ErrorType", "ResourceNotFoundException")])
            except Exception as e:  # the control plane said no (an unknown function, alias)
                return self._refused(start_response, e)
            return json_answer(start_response, 202, None, [("x-amzn-RequestId", request_id)])
        try:
            result = self.runner.invoke(function, qualifier, event)
        except MlopsError as e:
            return json_answer(start_response, 404, {"Type": "User", "message": str(e)},
                          [("x-amzn-ErrorType", "ResourceNotFoundException")])
        if result.throttled:
            return json_answer(start_response, 429, {
                "Type": "User", "message": THROTTLED,
                "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
                [("x-amzn-ErrorType", "TooManyRequestsException"),
                 ("x-amzn-RequestId", result.request_id)])
        headers = [("X-Amz-Executed-Version", result.executed_version)]
        if result.error is not None:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
            return json_answer(start_response, 200, result.error, headers)
        return json_answer(start_response, 200, result.payload, headers)

    @staticmethod
    def _refused(start_response: StartResponse, exc: Exception) -> Iterable[bytes]:
        """A control-plane error met while checking the function, as Lambda answers it."""
        response = getattr(exc, "response", None)
        error = response.get("Error", {}) if isinstance(response, dict) else {}
        code = str(error.get("Code") or "")
        if code == "ResourceNotFoundException":
            return json_answer(start_response, 404, {"Type": "User", "message": str(
                error.get("Message") or exc)}, [("x-amzn-ErrorType", code)])
        log.exception("asynchronous invoke could not be queued")
        return json_answer(start_response, 500, {"Type": "Service", "message": str(exc)},
                           [("x-amzn-ErrorType", "ServiceException")])


_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
