"""CodeDeploy lifecycle hooks (BeforeAllowTraffic, AfterAllowTraffic): a thin adapter from
the Lambda contract to ``framework.rollout.pretraffic``.

Environment: MLOPS_HOOK (the endpoint's hook settings as JSON, written by compile). Event:
CodeDeploy's ``{"DeploymentId", "LifecycleEventHookExecutionId"}``. The verdict is reported to
CodeDeploy (PutLifecycleEventHookExecutionStatus) and returned.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from framework.rollout.pretraffic import handle
from framework.runtime.clients import Connection


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    verdict = handle(event, json.loads(os.environ["MLOPS_HOOK"]), Connection.from_env(),
                     lambda: context.get_remaining_time_in_millis() / 1000, time.sleep)
    return {"status": verdict.status, "reason": verdict.reason}
