"""Asynchronous invocation on the local Lambda service (``InvocationType: Event``): answered
202 before the function runs, run later, function errors retried as Lambda retries them, the
1 MB payload limit and unknown functions refused; and the handler's shadow sender
(``framework.runtime.shadow.Mirror``) delivering copies through it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from framework.local import Runner
from framework.local.runner import async_retry_delays
from framework.runtime.shadow import Mirror

from .conftest import Deployed
from .support import BUCKET, create_function, make_zip

RECORDER = """
import json
import time

import boto3

s3 = boto3.client("s3")
BUCKET = "@BUCKET@"


def handler(event, context):
    mark = event.get("mlops_shadow") or {}
    key = event.get("key") or mark.get("request_id") or "event"
    prefix = f"events/{key}/"
    if event.get("wait_for"):  # hold until the test says go (proves the caller did not wait)
        for _ in range(200):
            if s3.list_objects_v2(Bucket=BUCKET, Prefix=event["wait_for"]).get("KeyCount"):
                break
            time.sleep(0.05)
    tries = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}{tries:03d}-{context.aws_request_id}.json",
                  Body=json.dumps({"event": event, "version": context.function_version}))
    if tries < int(event.get("fail_times", 0)):
        raise RuntimeError(f"attempt {tries + 1} fails")
    return {"attempt": tries + 1}
""".replace("@BUCKET@", BUCKET)


@pytest.fixture(scope="module")
def recorder(deployed: Deployed) -> str:
    lam = deployed.conn.client("lambda")
    fn = create_function(deployed.conn, "recorder", "", timeout=20,
                         data=make_zip({"recorder.py": RECORDER}))
    lam.update_function_configuration(FunctionName="recorder", Handler="recorder.handler")
    lam.publish_version(FunctionName="recorder")
    return str(fn["FunctionArn"])


def records(deployed: Deployed, key: str) -> list[dict[str, Any]]:
    s3 = deployed.conn.client("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"events/{key}/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
            for o in sorted(listed, key=lambda o: o["Key"])]


def until(check: Callable[[], Any], what: str, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.2)


def test_an_event_is_answered_202_then_runs(deployed: Deployed, recorder: str) -> None:
    lam = deployed.conn.client("lambda")
    answer = lam.invoke(FunctionName="recorder", Qualifier="1", InvocationType="Event",
                        Payload=json.dumps({"key": "first", "wait_for": "go/first"}))
    assert answer["StatusCode"] == 202
    assert answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert answer["Payload"].read() == b""
    assert records(deployed, "first") == []  # the function is still waiting for "go"
    deployed.conn.client("s3").put_object(Bucket=BUCKET, Key="go/first", Body=b"")
    [done] = until(lambda: records(deployed, "first"), "the event ran")
    assert done["event"]["key"] == "first" and done["version"] == "1"


def test_the_control_plane_refuses_what_lambda_refuses(deployed: Deployed,
                                                       recorder: str) -> None:
    lam = deployed.conn.client("lambda")
    with pytest.raises(ClientError) as big:
        lam.invoke(FunctionName="recorder", InvocationType="Event",
                   Payload=json.dumps({"key": "big", "pad": "x" * 1_100_000}))
    assert big.value.response["Error"]["Code"] == "RequestTooLargeException"
    with pytest.raises(ClientError) as missing:
        lam.invoke(FunctionName="no-such-function", InvocationType="Event", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as alias:
        lam.invoke(FunctionName="recorder", Qualifier="nope", InvocationType="Event",
                   Payload=b"{}")
    assert alias.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_function_errors_are_retried_twice_then_dropped(deployed: Deployed, recorder: str,
                                                       tmp_path: Path) -> None:
    runner = Runner(tmp_path, deployed.aws.control_url, retry_delays_s=(0.2, 0.4))
    try:
        healed = runner.submit_event("recorder", "1", {"key": "healed", "fail_times": 2})
        broken = runner.submit_event("recorder", "1", {"key": "broken", "fail_times": 9})
        until(lambda: runner.events[healed]["status"] != "queued"
              and runner.events[broken]["status"] != "queued", "both events ended")
        assert runner.events[healed]["status"] == "succeeded"
        assert runner.events[healed]["attempts"] == 3
        assert len(records(deployed, "healed")) == 3
        assert runner.events[broken]["status"] == "failed"
        assert runner.events[broken]["attempts"] == 3  # the first try and two retries
        assert runner.events[broken]["error"]["errorType"] == "RuntimeError"
        assert len(records(deployed, "broken")) == 3
        deployed.conn.client("lambda").put_function_event_invoke_config(
            FunctionName="recorder", MaximumRetryAttempts=0)
        once = runner.submit_event("recorder", "1", {"key": "once", "fail_times": 9})
        until(lambda: runner.events[once]["status"] != "queued", "the event ended")
        assert runner.events[once]["attempts"] == 1 and len(records(deployed, "once")) == 1
    finally:
        deployed.conn.client("lambda").delete_function_event_invoke_config(
            FunctionName="recorder")
        runner.close()


def test_retry_delays_are_lambdas_unless_set() -> None:
    assert async_retry_delays({}) == (60.0, 120.0)
    assert async_retry_delays({"MLOPS_LOCAL_ASYNC_RETRY_S": "0.5, 1"}) == (0.5, 1.0)
    with pytest.raises(ValueError, match="MLOPS_LOCAL_ASYNC_RETRY_S"):
        async_retry_delays({"MLOPS_LOCAL_ASYNC_RETRY_S": "soon"})


def test_the_shadow_sender_delivers_copies_while_the_shadow_alias_serves_another_version(
        deployed: Deployed, recorder: str) -> None:
    lam = deployed.conn.client("lambda")
    target = f"{recorder}:shadow"
    event = {"version": "2.0", "rawPath": "/p", "body": "{}",
             "requestContext": {"requestId": "primary-1"}}

    def mirror(own_version: str) -> Mirror:
        return Mirror(target, 1.0, own_version, lambda: deployed.conn.client("lambda"))

    absent = mirror("7")  # no shadow step running: the alias does not exist
    assert absent.offer(event, "primary-0", "1.0.0", [1]) and absent.drain()
    assert (absent.sent, absent.skipped) == (0, 1)
    lam.create_alias(FunctionName="recorder", Name="shadow", FunctionVersion="1")
    try:
        itself = mirror("1")  # the alias serves the primary's own version: nothing to compare
        assert itself.offer(event, "primary-2", "1.0.0", [1]) and itself.drain()
        assert (itself.sent, itself.skipped) == (0, 1)
        sending = mirror("7")
        assert sending.offer(event, "primary-1", "1.0.0", [1, 0]) and sending.drain()
        assert (sending.sent, sending.failed) == (1, 0)
        [got] = until(lambda: records(deployed, "primary-1"), "the copy ran")
    finally:
        lam.delete_alias(FunctionName="recorder", Name="shadow")
    assert got["version"] == "1"
    assert got["event"]["mlops_shadow"] == {"request_id": "primary-1", "version": "7",
                                            "model_version": "1.0.0", "predictions": [1, 0]}
    assert got["event"]["requestContext"] == {"requestId": "primary-1"}
