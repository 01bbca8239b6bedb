"""The runner in-process, against the daemon's control plane."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest

from framework.errors import MlopsError
from framework.local import Invocation, Runner

from .conftest import Deployed
from .support import BUCKET, create_function, make_zip, update_code

SLOW = """
import os
import time

def handler(event, context):
    time.sleep(event["sleep"])
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


def test_reserved_concurrency_bounds_workers(deployed: Deployed, tmp_path: Path) -> None:
    conn = deployed.conn
    data = make_zip({"slow.py": SLOW})
    create_function(conn, "slow", "", timeout=10, data=data)
    conn.client("lambda").put_function_concurrency(
        FunctionName="slow", ReservedConcurrentExecutions=2
    )
    conn.client("lambda").update_function_configuration(FunctionName="slow", Handler="slow.handler")
    runner = _runner(deployed, tmp_path)
    results: list[Invocation] = []
    lock = threading.Lock()

    def call() -> None:
        result = runner.invoke("slow", None, {"sleep": 0.4})
        with lock:
            results.append(result)

    started = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    runner.close()
    assert all(r.error is None for r in results), results
    assert len({r.payload["pid"] for r in results}) == 2  # two workers, each reused once
    assert elapsed >= 0.8  # four 0.4 s calls through two slots
    assert sum(r.cold_start for r in results) == 2


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
