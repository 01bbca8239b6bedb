"""Admin routes the daemon adds to the gateway for the scheduler and the runner.

- ``GET /_mlops/clock`` → ``{"now", "offset_s"}``: the scheduler's clock;
- ``POST /_mlops/clock`` with ``{"advance": SECONDS}`` or ``{"to": ISO}`` (and ``"wait"``,
  default true) → moves the clock forward, re-reads the rules, fires what is due and, with
  ``wait``, answers once those invocations finished: ``{"now", "fires": [{"rule",
  "scheduled", "function", "ok", "error", "executed_version", "payload", ...}]}``. This is how
  tests see a daily monitor fire without waiting a day;
- ``GET /_mlops/schedules`` → every schedule rule with its anchor, last fire and next fire;
- ``POST /_mlops/invoke`` with ``{"function": NAME or ARN, "qualifier", "event"}`` → runs the
  deployed function through the runner (synchronous ``Invoke``; moto's own never runs code)
  and answers ``{"ok", "payload", "error", "executed_version", "duration_ms", ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .apigw import HttpResponse, json_response
from .runner import Runner
from .scheduler import Scheduler, iso, parse_iso

AdminRoute = Callable[[str, str, bytes], HttpResponse]  # (method, query, body) -> response
WAIT_S = 900.0


def invoke_outcome(runner: Runner, function: str, qualifier: str | None,
                   event: Any) -> dict[str, Any]:
    """Invoke through the runner; the outcome as JSON-ready data."""
    result = runner.invoke(function, qualifier, event)
    error = result.error
    if result.timed_out and error is None:
        error = {"errorType": "TimeoutError", "errorMessage": "Task timed out"}
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


def invoke_route(runner: Runner) -> AdminRoute:
    def handle(method: str, _query: str, body: bytes) -> HttpResponse:
        if method != "POST":
            return json_response(405, {"message": "Method Not Allowed"})
        try:
            data = _body(body)
            function = str(data["function"])
        except (ValueError, KeyError) as e:
            return json_response(400, {"message": f"bad invoke request: {e}"})
        try:
            outcome = invoke_outcome(runner, function, data.get("qualifier"), data.get("event"))
        except Exception as e:  # resolution failed: unknown function, missing code, ...
            return json_response(502, {"message": f"{type(e).__name__}: {e}"})
        return json_response(200, outcome)

    return handle
