"""A monitor run that never finished, reported: Lambda's on-failure destination record of an
asynchronous run (crashed, timed out, out of memory) → a [FAILURE] report, e-mail and metric.

A run that dies writes nothing of its own. The monitor's alias sends its failed asynchronous
invocations (the schedule's) to the monitor's failure notifier (``handlers.monitor_failure``,
compiled beside the monitor with the same settings), which gets Lambda's invocation record::

    {"version": "1.0", "timestamp": ISO, "requestContext": {"requestId", "functionArn",
     "condition": "RetriesExhausted" | "EventAgeExceeded", "approximateInvokeCount"},
     "requestPayload": <the run's event>, "responseContext": {"statusCode", "executedVersion",
     "functionError": "Unhandled"}, "responsePayload": {"errorType", "errorMessage"}}

and writes the run's report as any run does (history, dashboard, ``notify.when``'s
``failure``), with the reason in Lambda's words, then counts it: ``MonitorFailures`` (1, per
Monitor and Endpoint) in the project's namespace. The local AWS sends the same record
(``framework.local.destinations``).

The same alias also runs the profiling of each capture object as it lands (its event an S3
``Object Created`` one, ``partial.landed``); such an invocation that failed is not a run:
``profile_failure`` says so in a sentence and counts ``PartialProfileFailures``, with no report
and no e-mail (the next run profiles the object).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from framework.monitoring.partial import landed
from framework.monitoring.run import Clients, reason, run_monitor
from framework.monitoring.spec import MonitorSpec, Window, parse_time
from framework.monitoring.store import Store

METRIC = "MonitorFailures"
PROFILE_METRIC = "PartialProfileFailures"  # capture objects not profiled when they landed


def window_of(event: Mapping[str, Any], spec: MonitorSpec, now: datetime) -> Window:
    """The window the failed run was checking (its event's, as ``handlers.monitor`` reads it)."""
    win = event.get("window")
    if isinstance(win, Mapping) and win.get("start") and win.get("end"):
        return Window(parse_time(str(win["start"])), parse_time(str(win["end"])))
    end = parse_time(str(event["time"])) if event.get("time") else now
    return Window.ending(end, spec.window_seconds)


def _error(record: Mapping[str, Any]) -> tuple[str, str]:
    """(errorType, "errorType: first line of errorMessage") of Lambda's record."""
    response = record.get("responsePayload")
    if isinstance(response, Mapping):
        kind = str(response.get("errorType") or "")
        message = str(response.get("errorMessage") or "").strip()
    else:
        kind, message = "", str(response or "").strip()
    text = message.splitlines()[0] if message else ""
    return kind, f"{kind}: {text}" if kind and text else kind or text or "no error message"


def why(record: Mapping[str, Any]) -> str:
    """What happened to the run, in a sentence, from Lambda's words."""
    context = record.get("requestContext") or {}
    kind, what = _error(record)
    if "timed out" in what.lower() or kind == "Sandbox.Timedout":
        head = "the run timed out"
    elif "memory" in what.lower() or "OutOfMemory" in kind:
        head = "the run ran out of memory"
    else:
        head = "the run failed"
    tries = context.get("approximateInvokeCount")
    condition = context.get("condition")
    tail = f" ({condition}, {tries} attempt{'s' if tries != 1 else ''}" if tries else (
        f" ({condition}" if condition else "")
    tail += f", request {context['requestId']})" if context.get("requestId") else (
        ")" if tail else "")
    return f"{head} before writing its report: {what}{tail}"


def report_failure(spec: MonitorSpec, store: Store, record: Mapping[str, Any],
                   clients: Clients, now: datetime | None = None) -> dict[str, Any]:
    """The failed run's [FAILURE] report (written, mailed per ``notify.when``) and its
    metric."""
    now = now or datetime.now(UTC)
    payload = record.get("requestPayload")
    event = payload if isinstance(payload, Mapping) else {}
    try:
        window = window_of(event, spec, now)
    except (ValueError, KeyError):
        window = Window.ending(now, spec.window_seconds)
    report = run_monitor(spec, store, window, clients, now=now, failed=why(record))
    report["failure_metric"] = count_failure(clients.cloudwatch, spec, now)
    return report


def count_failure(cw: Any, spec: MonitorSpec, when: datetime,
                  metric: str = METRIC) -> dict[str, Any]:
    if cw is None:
        return {"published": False, "reason": "no CloudWatch client"}
    try:
        cw.put_metric_data(Namespace=f"mlops/{spec.project}", MetricData=[{
            "MetricName": metric, "Timestamp": when, "Value": 1.0, "Unit": "Count",
            "Dimensions": [{"Name": "Monitor", "Value": spec.name},
                           {"Name": "Endpoint", "Value": spec.endpoint}]}])
    except Exception as e:  # the report is written and mailed: say what failed, go on
        return {"published": False, "reason": reason(e)}
    return {"published": True, "namespace": f"mlops/{spec.project}", "metric": metric}


def profiled_object(record: Mapping[str, Any]) -> str | None:
    """The capture object whose profiling on landing failed, when ``record`` is of such an
    invocation (its event an S3 ``Object Created`` one); None for a monitor run's."""
    try:
        obj = landed(record.get("requestPayload"))
    except ValueError:
        return "(an S3 event without its object)"
    return None if obj is None else obj.key


def profile_failure(spec: MonitorSpec, record: Mapping[str, Any], key: str, cw: Any,
                    now: datetime | None = None) -> dict[str, Any]:
    """A capture object that could not be profiled when it landed: said in a sentence (for the
    log) and counted (``PartialProfileFailures``), never mailed nor reported: nothing is
    missing from any report, since the next run profiles the object (the backfill)."""
    now = now or datetime.now(UTC)
    context = record.get("requestContext") or {}
    tries = context.get("approximateInvokeCount")
    _kind, what = _error(record)
    message = (f"{spec.name}: {key} was not profiled when it landed: {what}"
               + (f" ({context.get('condition')}, {tries} attempt{'s' if tries != 1 else ''})"
                  if tries else "")
               + "; the next run profiles it")
    return {"status": "profile_failed", "object": key, "message": message,
            "metric": count_failure(cw, spec, now, PROFILE_METRIC)}
