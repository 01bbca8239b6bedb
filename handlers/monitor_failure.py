"""Monitor failure notifier: the on-failure destination of a monitor's asynchronous runs.

Environment: MLOPS_MONITOR (the monitor's settings, as its monitor function has them). Event:
Lambda's invocation record of a run that crashed, timed out or ran out of memory (see
``framework.monitoring.failure``). Writes the run's [FAILURE] report, mails it per
``notify.when`` and counts it (``MonitorFailures``); returns a summary. The record of a capture
object's profiling on landing (its event an S3 ``Object Created`` one) is not a run's: it is
logged and counted (``PartialProfileFailures``), not reported nor mailed.
"""

from __future__ import annotations

import json
import os
from typing import Any

from framework.monitoring.failure import profile_failure, profiled_object, report_failure
from framework.monitoring.run import Clients
from framework.monitoring.spec import MonitorSpec
from framework.monitoring.store import S3Store
from framework.runtime.clients import Connection


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    spec = MonitorSpec.from_dict(json.loads(os.environ["MLOPS_MONITOR"]))
    conn = Connection.from_env()
    key = profiled_object(event or {})
    if key is not None:  # not a run: one object's partial profile, made by the next run
        done = profile_failure(spec, event or {}, key, conn.client("cloudwatch"))
        print(json.dumps({"msg": "partial_profile_failed", **done}))
        return done
    clients = Clients(ses=conn.client("ses"), cloudwatch=conn.client("cloudwatch"))
    report = report_failure(spec, S3Store(conn.client("s3"), spec.bucket), event or {}, clients)
    return {"status": report["status"], "subject": report["subject"],
            "report": report["report_key"], "notification": report.get("notification"),
            "metric": report.get("failure_metric")}
