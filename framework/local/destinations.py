"""Lambda's asynchronous-invocation settings for the scheduler's fires: retries, then the
on-failure destination, as Lambda applies a function's event invoke config.

EventBridge invokes its Lambda targets asynchronously; Lambda then retries a failed run
(``MaximumRetryAttempts``, default 2; locally after the runner's ``retry_delays_s``) and,
when every attempt failed, sends an invocation record to ``DestinationConfig.OnFailure``::

    {"version": "1.0", "timestamp", "requestContext": {"requestId", "functionArn",
     "condition": "RetriesExhausted", "approximateInvokeCount"}, "requestPayload": <event>,
     "responseContext": {"statusCode": 200, "executedVersion", "functionError": "Unhandled"},
     "responsePayload": <the error: errorType, errorMessage>}

moto stores the config (``PutFunctionEventInvokeConfig``) and never acts on it; this module
does, for the scheduler (``Destinations.invoke`` is its invoke function; a crashed, timed-out
or out-of-memory monitor run thus reaches the monitor's failure notifier). A destination is a
function (invoked with the record, and waited for, so the clock route's answer includes it),
an SQS queue (``SendMessage``) or an SNS topic (``Publish``); the outcome says which, and how
it went.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .admin import invoke_outcome
from .runner import ASYNC_MAX_RETRIES, Runner

log = logging.getLogger(__name__)

_ARN = re.compile(r"^arn:aws[a-z-]*:(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]+):"
                  r"(?P<account>\d{12}):(?P<rest>.+)$")
Clients = Callable[[str, str], Any]  # (service, region) -> a boto3 client of the control plane


@dataclass(frozen=True)
class Settings:
    retries: int = ASYNC_MAX_RETRIES
    on_failure: str | None = None


def split_function(arn: str) -> tuple[str, str, str | None]:
    """(region, function name, qualifier) of a function ARN (qualified or not)."""
    m = _ARN.match(arn)
    if m is None or m["service"] != "lambda":
        raise ValueError(f"{arn} is not a function ARN")
    parts = m["rest"].split(":")  # function:NAME[:QUALIFIER]
    return m["region"], parts[1], parts[2] if len(parts) > 2 else None


def record(arn: str, event: Any, outcome: dict[str, Any], attempts: int) -> dict[str, Any]:
    """Lambda's invocation record of a failed asynchronous invocation."""
    now = datetime.now(UTC)
    return {"version": "1.0",
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "requestContext": {"requestId": outcome.get("request_id"), "functionArn": arn,
                               "condition": "RetriesExhausted",
                               "approximateInvokeCount": attempts},
            "requestPayload": event,
            "responseContext": {"statusCode": 200,
                                "executedVersion": outcome.get("executed_version"),
                                "functionError": "Unhandled"},
            "responsePayload": outcome.get("error")}


class Destinations:
    """Invokes a function as Lambda runs an asynchronous invocation: retries, destination."""

    def __init__(self, runner: Runner, clients: Clients,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.runner = runner
        self.clients = clients
        self.sleep = sleep

    def settings(self, arn: str) -> Settings:
        """The function's (alias's) event invoke config; Lambda's defaults without one."""
        try:
            region, name, qualifier = split_function(arn)
            args = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
            cfg = self.clients("lambda", region).get_function_event_invoke_config(**args)
        except Exception:  # none configured (ResourceNotFoundException), or not a function
            return Settings()
        retries = cfg.get("MaximumRetryAttempts")
        dest = (cfg.get("DestinationConfig") or {}).get("OnFailure") or {}
        return Settings(ASYNC_MAX_RETRIES if retries is None else int(retries),
                        dest.get("Destination") or None)

    def invoke(self, arn: str, event: Any) -> dict[str, Any]:
        """Run ``arn`` with ``event`` as an asynchronous invocation; the last attempt's outcome,
        with ``attempts`` and, after a failure, ``destination``."""
        settings = self.settings(arn)
        delays = getattr(self.runner, "retry_delays_s", (60.0, 120.0)) or (0.0,)
        attempt = 0
        while True:
            attempt += 1
            outcome = invoke_outcome(self.runner, arn, None, event)
            if outcome.get("ok") or attempt > settings.retries:
                break
            self.sleep(delays[min(attempt - 1, len(delays) - 1)])
        outcome["attempts"] = attempt
        if not outcome.get("ok") and settings.on_failure:
            outcome["destination"] = self.deliver(settings.on_failure,
                                                  record(arn, event, outcome, attempt))
        return outcome

    def deliver(self, destination: str, rec: dict[str, Any]) -> dict[str, Any]:
        """Send ``rec`` to ``destination``; what happened, for the fire's outcome and the log."""
        m = _ARN.match(destination)
        service = m["service"] if m else ""
        try:
            if service == "lambda":
                got = invoke_outcome(self.runner, destination, None, rec)
                done = {"ok": bool(got.get("ok")), "error": got.get("error"),
                        "payload": got.get("payload")}
            elif service == "sqs" and m is not None:
                sqs = self.clients("sqs", m["region"])
                url = sqs.get_queue_url(QueueName=m["rest"],
                                        QueueOwnerAWSAccountId=m["account"])["QueueUrl"]
                sqs.send_message(QueueUrl=url, MessageBody=json.dumps(rec))
                done = {"ok": True}
            elif service == "sns" and m is not None:
                self.clients("sns", m["region"]).publish(TopicArn=destination,
                                                         Message=json.dumps(rec))
                done = {"ok": True}
            else:
                done = {"ok": False, "error": "only function, queue and topic destinations run "
                        "on the local AWS"}
        except Exception as e:  # the destination is gone, or refuses: said, never raised
            done = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        level = logging.INFO if done["ok"] else logging.WARNING
        log.log(level, "destinations: failed run of %s sent to %s: %s",
                rec["requestContext"]["functionArn"], destination,
                "ok" if done["ok"] else done.get("error"))
        return {"arn": destination, **done}
