"""The local AWS's asynchronous-invocation settings (framework/local/destinations.py), against
a real moto server: a function's event invoke config is read as Lambda applies it (defaults
without one), and a failed run's record — Lambda's shape — reaches a queue or a topic; a
destination that cannot take it is said, never raised. (A function destination, and the
scheduler's invoke through it, run end to end in tests/e2e/test_monitor_scale_e2e.py.)"""

from __future__ import annotations

import io
import json
import socket
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from framework.local.destinations import Destinations, Settings, record, split_function
from framework.runtime.clients import Connection

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def control() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _clients(url: str) -> Any:
    return lambda service, region: Connection(region, url, dummy_credentials=True).client(service)


def _function(url: str, name: str) -> str:
    iam = _clients(url)("iam", "us-east-1")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"Service": "lambda.amazonaws.com"}}]}
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", "def handler(event, context):\n    return event\n")
    lam = _clients(url)("lambda", "us-east-1")
    lam.create_function(FunctionName=name, Runtime="python3.13", Handler="h.handler",
                        Role=role["Role"]["Arn"], Code={"ZipFile": buf.getvalue()})
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}:live"


FAILED = {"ok": False, "request_id": "r-1", "executed_version": "4", "timed_out": True,
          "error": {"errorType": "Sandbox.Timedout",
                    "errorMessage": "Task timed out after 1.00 seconds"}}


def test_the_event_invoke_config_is_read_as_lambda_applies_it(control: str) -> None:
    arn = _function(control, "mon-a")
    dest = Destinations(runner=None, clients=_clients(control))  # type: ignore[arg-type]
    assert dest.settings(arn) == Settings(retries=2, on_failure=None)  # Lambda's defaults
    notifier = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:mon-a-failed:live"
    _clients(control)("lambda", "us-east-1").put_function_event_invoke_config(
        FunctionName="mon-a", Qualifier="live", MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": notifier}})
    assert dest.settings(arn) == Settings(retries=0, on_failure=notifier)
    assert split_function(arn) == ("us-east-1", "mon-a", "live")
    with pytest.raises(ValueError):
        split_function("arn:aws:sqs:us-east-1:123456789012:q")


def test_a_failed_runs_record_reaches_a_queue_or_a_topic(control: str) -> None:
    arn = _function(control, "mon-b")
    rec = record(arn, {"time": "2026-12-01T00:00:00Z"}, FAILED, 1)
    assert rec["requestContext"] == {"requestId": "r-1", "functionArn": arn,
                                     "condition": "RetriesExhausted", "approximateInvokeCount": 1}
    assert rec["responseContext"]["functionError"] == "Unhandled"
    assert rec["responsePayload"]["errorType"] == "Sandbox.Timedout"
    clients = _clients(control)
    dest = Destinations(runner=None, clients=clients)  # type: ignore[arg-type]
    sqs = clients("sqs", "us-east-1")
    url = sqs.create_queue(QueueName="failed-runs")["QueueUrl"]
    got = dest.deliver(f"arn:aws:sqs:us-east-1:{ACCOUNT}:failed-runs", rec)
    assert got["ok"], got
    [message] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert json.loads(message["Body"]) == rec
    topic = clients("sns", "us-east-1").create_topic(Name="failed-runs")["TopicArn"]
    assert dest.deliver(topic, rec)["ok"]
    gone = dest.deliver(f"arn:aws:sqs:us-east-1:{ACCOUNT}:no-such-queue", rec)
    assert not gone["ok"] and "NonExistentQueue" in gone["error"]
    other = dest.deliver("arn:aws:events:us-east-1:123456789012:event-bus/default", rec)
    assert not other["ok"] and "only function, queue and topic" in other["error"]
