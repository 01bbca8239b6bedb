"""Monitor function: a scheduled (or hand-fired) drift and performance check.

Environment: MLOPS_MONITOR (the monitor's settings as JSON, written by compile). Event: the
schedule's input ``{"source": "mlops.schedule", "monitor": NAME, "time": ISO}`` (the scheduled
time, filled in by the rule's input transformer; the window ends there), or, fired by hand,
``{"window": {"start": ISO, "end": ISO}}``; without either the window ends now. Returns a
summary of the report it wrote.

Fan-out: a run with many capture objects lacking a partial profile hands them out to parallel
invocations of this same function (its alias), each with the event ``{"profile_objects":
[key, ...]}``, which profiles those objects, stores their partials and returns what it did;
the run then merges every partial (``framework.monitoring.partial``). Shares are handed out
while more than half the run's time is left (``partial.in_time``): a window too big to
profile in one run is reported without the objects left over, which the next run profiles.
A whole day of more stored partials than ``fan_out.partials`` that no run merged yet is
merged the same way: each invocation gets ``{"merge_partials": [key, ...], "day": D}``,
merges those objects' partials and returns the segment (``partial.merge_partials``), which
the run adds up, in order, into the window and the day's rollup.

Profiled on landing: the monitor's landing rule sends each S3 ``Object Created`` event of
``capture/{endpoint}/`` in the registry bucket here (EventBridge, asynchronously); the run
profiles that one object into its partial (``partial.profile_landed``; one already stored is
kept) and does nothing else: no report, no e-mail. Its failure reaches the failure notifier,
which counts it without mailing; the next run profiles the object (the backfill).
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from framework.apply.audit import AuditLog
from framework.monitoring.check import load_settings
from framework.monitoring.partial import (
    FETCHERS,
    Fan,
    in_time,
    landed,
    merge_partials,
    profile_landed,
    profile_objects,
)
from framework.monitoring.run import Clients, run_monitor
from framework.monitoring.spec import MonitorSpec, Window, parse_time
from framework.monitoring.store import S3Store
from framework.runtime.clients import Connection


def _window(event: dict[str, Any], spec: MonitorSpec) -> Window:
    win = event.get("window")
    if isinstance(win, dict) and win.get("start") and win.get("end"):
        return Window(parse_time(str(win["start"])), parse_time(str(win["end"])))
    end = parse_time(str(event["time"])) if event.get("time") else datetime.now(UTC)
    return Window.ending(end, spec.window_seconds)


def _fan(lam: Any, function: str) -> Fan:
    """A share of objects profiled, or of a day's partials merged, by an invocation of
    ``function`` (this one's ARN)."""
    def fan(keys: list[str], merge_day: str | None = None) -> dict[str, Any]:
        event = ({"profile_objects": keys} if merge_day is None
                 else {"merge_partials": keys, "day": merge_day})
        resp = lam.invoke(FunctionName=function, Payload=json.dumps(event))
        body = json.loads(resp["Payload"].read() or b"null")
        if resp.get("FunctionError"):
            raise RuntimeError(str((body or {}).get("errorMessage") or resp["FunctionError"]))
        return dict(body or {})
    return fan


def s3_client(conn: Connection) -> Any:
    """S3 with a connection for each thread that fetches partial profiles: beyond botocore's
    default pool of 10, each fetch would open a connection and drop it, with a warning in the
    function's log every time (thousands a run over a big window)."""
    return dataclasses.replace(conn, max_pool_connections=FETCHERS).client("s3")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    spec = MonitorSpec.from_dict(json.loads(os.environ["MLOPS_MONITOR"]))
    conn = Connection.from_env()
    s3 = s3_client(conn)
    if isinstance((event or {}).get("profile_objects"), list):  # a fan-out worker's share
        store = S3Store(s3, spec.bucket)
        return profile_objects(store, [str(k) for k in event["profile_objects"]],
                               load_settings(store, spec)[0])
    if isinstance((event or {}).get("merge_partials"), list):  # a share of a day's merge
        store = S3Store(s3, spec.bucket)
        return merge_partials(store, [str(k) for k in event["merge_partials"]],
                              str(event.get("day") or ""), load_settings(store, spec)[0])
    obj = landed(event)
    if obj is not None:  # a capture object just landed: its partial profile, nothing more
        store = S3Store(s3, spec.bucket)
        return profile_landed(store, obj, spec.bucket, spec.endpoint,
                              load_settings(store, spec)[0])
    audit = AuditLog(s3, spec.bucket, Path("/tmp/mlops-audit.jsonl"), writer=f"mon-{spec.name}")
    fan = _fan(dataclasses.replace(conn, read_timeout=900.0, max_attempts=1).client("lambda"),
               str(getattr(context, "invoked_function_arn", "") or
                   os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")))
    if callable(getattr(context, "get_remaining_time_in_millis", None)):
        fan = in_time(fan, context.get_remaining_time_in_millis)
    clients = Clients(ses=conn.client("ses"), cloudwatch=conn.client("cloudwatch"),
                      lam=conn.client("lambda"), audit=audit.record, fan=fan)
    report = run_monitor(spec, S3Store(s3, spec.bucket), _window(event or {}, spec), clients)
    return {"status": report["status"], "subject": report["subject"],
            "report": report["report_key"], "notification": report.get("notification"),
            "actions": [{"action": a.get("action"), "ok": a.get("ok"),
                         "outcome": a.get("outcome")} for a in report.get("actions") or []]}
