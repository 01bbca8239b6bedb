"""Monitor function: a scheduled (or hand-fired) drift and performance check.

Environment: MLOPS_MONITOR (the monitor's settings as JSON, written by compile). Event: the
schedule's input ``{"source": "mlops.schedule", "monitor": NAME, "time": ISO}`` (the scheduled
time, filled in by the rule's input transformer; the window ends there), or, fired by hand,
``{"window": {"start": ISO, "end": ISO}}``; without either the window ends now. Returns a
summary of the report it wrote.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from framework.apply.audit import AuditLog
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


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    spec = MonitorSpec.from_dict(json.loads(os.environ["MLOPS_MONITOR"]))
    conn = Connection.from_env()
    s3 = conn.client("s3")
    audit = AuditLog(s3, spec.bucket, Path("/tmp/mlops-audit.jsonl"))
    clients = Clients(ses=conn.client("ses"), cloudwatch=conn.client("cloudwatch"),
                      lam=conn.client("lambda"), audit=audit.record)
    report = run_monitor(spec, S3Store(s3, spec.bucket), _window(event or {}, spec), clients)
    return {"status": report["status"], "subject": report["subject"],
            "report": report["report_key"], "notification": report.get("notification")}
