"""The stage's rollback notifier: the target of its EventBridge rule on CodeDeploy's
deployment state-change events (FAILURE, STOP); a thin adapter to
``framework.rollout.notice.notify``, which e-mails the [ROLLBACK] message when CodeDeploy
rolled the deployment back.

Environment: MLOPS_ROLLBACK (project, stage and, per deployment group, the endpoint, its
rollout and its recipients, as JSON, written by compile), MLOPS_REGISTRY_BUCKET (where its
audit records go). Event: EventBridge's ``CodeDeploy Deployment State-change Notification``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from framework.apply.audit import AuditLog
from framework.monitoring.mailer import send
from framework.rollout.notice import WRITER, notify
from framework.runtime.clients import Connection


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    conn = Connection.from_env()
    audit = AuditLog(conn.client("s3"), os.environ["MLOPS_REGISTRY_BUCKET"],
                     Path("/tmp/mlops-audit.jsonl"), writer=WRITER)
    clients = {name: conn.client(name) for name in ("codedeploy", "lambda", "logs", "ses")}
    summary = notify(event, json.loads(os.environ["MLOPS_ROLLBACK"]), clients, send,
                     audit.record)
    print(json.dumps({"msg": "rollback-notice", **summary}))
    return summary
