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
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from framework.monitoring.run import Clients, reason, run_monitor
from framework.monitoring.spec import MonitorSpec, Window, parse_time
from framework.monitoring.store import Store

METRIC = "MonitorFailures"


def window_of(event: Mapping[str, Any], spec: MonitorSpec, now: datetime) -> Window:
    """The window the failed run was checking (its event's, as ``handlers.monitor`` reads it)."""
    win = event.get("window")
    if isinstance(win, Mapping) and win.get("start") and win.get("end"):
        return Window(parse_time(str(win["start"])), parse_time(str(win["end"])))
    end = parse_time(str(event["time"])) if event.get("time") else now
    return Window.ending(end, spec.window_seconds)


def why(record: Mapping[str, Any]) -> str:
    """What happened to the run, in a sentence, from Lambda's words."""
    context = record.get("requestContext") or {}
    response = record.get("responsePayload")
    if isinstance(response, Mapping):
        kind = str(response.get("errorType") or "")
        message = str(response.get("errorMessage") or "").strip()
    else:
        kind, message = "", str(response or "").strip()
    text = message.splitlines()[0] if message else ""
    what = f"{kind}: {text}" if kind and text else kind or text or "no error message"
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


def count_failure(cw: Any, spec: MonitorSpec, when: datetime) -> dict[str, Any]:
    if cw is None:
        return {"published": False, "reason": "no CloudWatch client"}
    try:
        cw.put_metric_data(Namespace=f"mlops/{spec.project}", MetricData=[{
            "MetricName": METRIC, "Timestamp": when, "Value": 1.0, "Unit": "Count",
            "Dimensions": [{"Name": "Monitor", "Value": spec.name},
                           {"Name": "Endpoint", "Value": spec.endpoint}]}])
    except Exception as e:  # the report is written and mailed: say what failed, go on
        return {"published": False, "reason": reason(e)}
    return {"published": True, "namespace": f"mlops/{spec.project}", "metric": METRIC}
