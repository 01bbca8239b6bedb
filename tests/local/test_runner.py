"""The runner in-process, against the daemon's control plane."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from framework.errors import MlopsError
from framework.local import Invocation, Runner

from .conftest import Deployed
from .support import BUCKET, create_function, create_http_api, make_zip, update_code

T = TypeVar("T")
SLOW = """
import json
import os
import time

def handler(event, context):
    # invoked directly ({"sleep": s}) or through the HTTP API (its event's JSON body)
    time.sleep(event["sleep"] if "sleep" in event else json.loads(event["body"])["sleep"])
    return {"pid": os.getpid()}
"""


def _runner(deployed: Deployed, home: Path, **kwargs: object) -> Runner:
    return Runner(home, deployed.aws.control_url, **kwargs)  # type: ignore[arg-type]


def test_seeded_weighted_routing_is_reproducible(deployed: Deployed, tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        runner = _runner(deployed, tmp_path, rng=random.Random(7))
        try:
            runs.append([runner.invoke("echo", "live", {}).executed_version for _ in range(25)])
        finally:
            runner.close()
    assert runs[0] == runs[1]
    assert set(runs[0]) == {"1", "2"}


def test_invocation_result(deployed: Deployed, tmp_path: Path) -> None:
    runner = _runner(deployed, tmp_path)
    try:
        first = runner.invoke(deployed.function_arn + ":2", None, {"k": 1})
        second = runner.invoke("echo", "2", {"k": 2})
        error = runner.invoke("echo", "2", {"queryStringParameters": {"mode": "raise"}})
    finally:
        runner.close()
    assert isinstance(first, Invocation)
    assert first.executed_version == "2" and first.error is None and not first.timed_out
    assert first.cold_start and not second.cold_start
    assert second.duration_ms < first.duration_ms
    assert error.payload is None and error.error is not None
    assert error.error["errorType"] == "ValueError"
    assert error.error["errorMessage"] == "boom"
    assert any("echo.py" in line for line in error.error["stackTrace"])
    assert (tmp_path / "logs" / "echo.log").read_text().count("START RequestId") == 3


def _reserved_slow(deployed: Deployed, name: str, reserved: int) -> None:
    conn = deployed.conn
    create_function(conn, name, "", timeout=10, data=make_zip({"slow.py": SLOW}))
    conn.client("lambda").put_function_concurrency(
        FunctionName=name, ReservedConcurrentExecutions=reserved)
    conn.client("lambda").update_function_configuration(FunctionName=name, Handler="slow.handler")


def _at_once(count: int, call: Callable[[], T]) -> list[T]:
    """``call`` from ``count`` threads started together; their results."""
    results: list[T] = []
    lock = threading.Lock()

    def one() -> None:
        got = call()
        with lock:
            results.append(got)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_reserved_concurrency_throttles_what_it_cannot_take(deployed: Deployed,
                                                            tmp_path: Path) -> None:
    """As on Lambda: a synchronous invocation beyond the reserved concurrency is refused at
    once (nothing runs); an asynchronous one waits for an execution to end and then runs."""
    _reserved_slow(deployed, "slow", 2)
    runner = _runner(deployed, tmp_path)
    try:
        sync = _at_once(4, lambda: runner.invoke("slow", None, {"sleep": 0.6}))
        started = time.monotonic()
        queued = _at_once(4, lambda: runner.invoke("slow", None, {"sleep": 0.4}, queued=True))
        elapsed = time.monotonic() - started
    finally:
        runner.close()
    ran = [r for r in sync if not r.throttled]
    throttled = [r for r in sync if r.throttled]
    assert len(ran) == 2 and all(r.error is None for r in ran), sync
    assert len({r.payload["pid"] for r in ran}) == 2
    assert len(throttled) == 2
    for r in throttled:
        assert r.payload is None and r.error is not None
        assert r.error["errorType"] == "TooManyRequestsException"
        assert r.duration_ms < 500  # refused, not run
    assert all(r.error is None and not r.throttled for r in queued), queued
    assert len({r.payload["pid"] for r in queued}) == 2  # the same two environments, reused
    assert elapsed >= 0.8  # four 0.4 s runs through two executions
    log = (tmp_path / "logs" / "slow.log").read_text()
    assert log.count("START RequestId") == 6  # the throttled ones never started


def test_a_throttled_invoke_is_lambdas_429_and_api_gateways_500(deployed: Deployed) -> None:
    """Through the daemon: the Invoke API answers a throttled call as Lambda does (boto3 sees
    TooManyRequestsException), and the HTTP API turns it into its integration failure."""
    import dataclasses

    from botocore.exceptions import ClientError

    _reserved_slow(deployed, "slow-api", 1)
    lam = dataclasses.replace(deployed.conn, max_attempts=1).client("lambda")  # no retry
    arn = lam.get_function(FunctionName="slow-api")["Configuration"]["FunctionArn"]
    api = create_http_api(deployed.conn, "throttled", {"POST /slow": arn})

    def invoke() -> str:
        try:
            resp = lam.invoke(FunctionName="slow-api", Payload=json.dumps({"sleep": 1.5}))
        except ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            return f"{e.response['Error']['Code']} {status}"
        return f"ran {resp['StatusCode']}"

    outcomes = _at_once(2, invoke)
    assert sorted(outcomes) == ["TooManyRequestsException 429", "ran 200"], outcomes

    def post(sleep: float) -> tuple[int, Any]:
        req = urllib.request.Request(deployed.url("/slow", api), method="POST",
                                     data=json.dumps({"sleep": sleep}).encode())
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return int(r.status), json.loads(r.read())
        except urllib.error.HTTPError as e:
            return int(e.code), json.loads(e.read())

    deadline = time.monotonic() + 10
    while post(0)[0] == 404 and time.monotonic() < deadline:  # the gateway learns the route
        time.sleep(0.2)
    answers = sorted(_at_once(2, lambda: post(1.5)), key=lambda a: a[0])
    assert answers[0][0] == 200, answers
    assert answers[1] == (500, {"message": "Internal Server Error"}), answers


def test_worker_refuses_the_repository_framework(deployed: Deployed, tmp_path: Path) -> None:
    handler = "import framework\n\ndef handler(event, context):\n    return framework.__file__\n"
    create_function(deployed.conn, "leaky", "", data=make_zip({"leaky.py": handler}))
    deployed.conn.client("lambda").update_function_configuration(
        FunctionName="leaky", Handler="leaky.handler"
    )
    runner = _runner(deployed, tmp_path)
    try:
        result = runner.invoke("leaky", None, {})
    finally:
        runner.close()
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"
    # with mlops installed: "... imported from <repo>, not from the deployed code ..."
    assert "framework" in result.error["errorMessage"]
    assert result.payload is None


def test_code_is_verified_against_code_sha256(deployed: Deployed, tmp_path: Path) -> None:
    fn = create_function(deployed.conn, "tampered", "t1")
    sha_hex = __import__("base64").b64decode(fn["CodeSha256"]).hex()
    deployed.conn.client("s3").put_object(Bucket=BUCKET, Key=f"code/{sha_hex}.zip", Body=b"evil")
    runner = _runner(deployed, tmp_path)
    try:
        with pytest.raises(MlopsError, match="sha256"):
            runner.invoke("tampered", None, {})
    finally:
        runner.close()
    assert not (tmp_path / "code" / sha_hex).exists()


READER = """
import boto3

S3 = boto3.client("s3")  # built at init from the Lambda environment (AWS_ENDPOINT_URL, region)


def handler(event, context):
    body = S3.get_object(Bucket=event["bucket"], Key=event["key"])["Body"].read()
    return {"text": body.decode()}
"""


def test_handler_boto3_reaches_the_local_aws(deployed: Deployed, tmp_path: Path) -> None:
    create_function(deployed.conn, "reader", "", data=make_zip({"reader.py": READER}))
    deployed.conn.client("lambda").update_function_configuration(
        FunctionName="reader", Handler="reader.handler"
    )
    deployed.conn.client("s3").put_object(Bucket=BUCKET, Key="hello.txt", Body=b"hi there")
    runner = _runner(deployed, tmp_path)
    try:
        result = runner.invoke("reader", None, {"bucket": BUCKET, "key": "hello.txt"})
    finally:
        runner.close()
    assert result.error is None, result.error
    assert result.payload == {"text": "hi there"}


def test_new_code_under_latest_replaces_workers(deployed: Deployed, tmp_path: Path) -> None:
    create_function(deployed.conn, "changing", "c1")
    runner = _runner(deployed, tmp_path, cache_ttl_s=0.0)
    try:
        first = runner.invoke("changing", None, {})
        update_code(deployed.conn, "changing", "c2")
        second = runner.invoke("changing", None, {})
        old_pid = json.loads(first.payload["body"])["pid"]
        assert json.loads(second.payload["body"])["tag"] == "c2"
        assert old_pid not in runner.worker_pids()
    finally:
        runner.close()
    assert runner.worker_pids() == []
