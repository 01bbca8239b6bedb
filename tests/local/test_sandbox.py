"""Execution environments on their own: the Runtime API as awslambdaric uses it, INIT, the
limits Lambda enforces, and what happens when the process dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from framework.interpreters import find_python
from framework.local.pool import Pool
from framework.local.runner import install_runtime
from framework.local.sandbox import Sandbox, SandboxSpec

HANDLER = '''
import os, sys
HOLD = []
print("init ran")

def handler(event, context):
    if event.get("mb"):
        HOLD.append(b"x" * (event["mb"] * 1024 * 1024))
    if event.get("exit"):
        sys.exit(3)
    if event.get("raise"):
        raise KeyError("missing")
    if event.get("big"):
        return "x" * (7 * 1024 * 1024)
    return {"pid": os.getpid(), "path": sys.path, "request_id": context.aws_request_id,
            "remaining": context.get_remaining_time_in_millis(),
            "arn": context.invoked_function_arn, "version": context.function_version}
'''
RUNTIME = "python3.13"


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_runtime(tmp_path_factory.mktemp("runtimes"), RUNTIME, "x86_64")


def _spec(tmp_path: Path, runtime_dir: Path, *, memory_mb: int | None = None,
          source: str = HANDLER, timeout_s: float = 10) -> SandboxSpec:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "fn.py").write_text(source)
    env = {"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": str(code), "_HANDLER": "fn.handler",
           "AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_VERSION": "7",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
           "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn", "AWS_LAMBDA_LOG_STREAM_NAME": "s",
           "PYTHONDONTWRITEBYTECODE": "1"}
    return SandboxSpec(runtime=RUNTIME, python=find_python(RUNTIME), handler="fn.handler",
                       task_root=code, layers=(), runtime_dir=runtime_dir, env=env,
                       timeout_s=timeout_s, memory_mb=memory_mb, log_path=tmp_path / "fn.log",
                       function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
                       version="7")


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_init_once_invoke_many_with_lambda_context(tmp_path: Path, runtime_dir: Path) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn:live"

    async def go() -> list[Any]:
        box = Sandbox(_spec(tmp_path, runtime_dir))
        assert await box.start() is None
        try:
            return [await box.invoke(b"{}", arn, cold=i == 0) for i in range(3)]
        finally:
            await box.kill()

    results = _run(go())
    answers = [json.loads(r.payload) for r in results]
    assert len({a["pid"] for a in answers}) == 1
    assert [r.cold for r in results] == [True, False, False]
    assert results[0].init_ms is not None and results[1].init_ms is None
    assert answers[0]["request_id"] == results[0].request_id
    assert answers[0]["arn"] == arn and answers[0]["version"] == "7"
    assert 0 < answers[0]["remaining"] <= 10_000
    path = answers[0]["path"]
    assert path[0] == str(tmp_path / "code") or path[1] == str(tmp_path / "code")
    assert not any("site-packages" in p and ".venv" in p for p in path)  # not the project's
    log = (tmp_path / "fn.log").read_text()
    assert log.count("init ran") == 1
    assert log.count("START RequestId:") == 3 and log.count("END RequestId:") == 3
    assert "Init Duration:" in log.splitlines()[[i for i, line in enumerate(
        log.splitlines()) if line.startswith("REPORT")][0]]
    assert "Billed Duration:" in log and "Max Memory Used:" in log


def test_errors_have_lambdas_shapes(tmp_path: Path, runtime_dir: Path) -> None:
    async def go() -> tuple[Any, Any, Any]:
        pool = Pool(_spec(tmp_path, runtime_dir), 1)
        try:
            raised = await pool.invoke(b'{"raise": true}', "arn")
            big = await pool.invoke(b'{"big": true}', "arn")
            fine = await pool.invoke(b"{}", "arn")
            return raised, big, fine
        finally:
            await pool.close()

    raised, big, fine = _run(go())
    assert raised.error["errorType"] == "KeyError" and "missing" in raised.error["errorMessage"]
    assert raised.error["stackTrace"]
    assert big.error["errorType"] == "Function.ResponseSizeTooLarge"
    assert fine.error is None and fine.cold  # the environment was reset, as Lambda does


def test_init_error_is_reported_not_hung(tmp_path: Path, runtime_dir: Path) -> None:
    spec = _spec(tmp_path, runtime_dir, source="import no_such_module\n")

    async def go() -> Any:
        box = Sandbox(spec)
        try:
            return await box.start()
        finally:
            await box.kill()

    error = _run(go())
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module" in error["errorMessage"]


def test_runtime_api_refuses_an_unknown_request_id(tmp_path: Path, runtime_dir: Path) -> None:
    async def go() -> int:
        box = Sandbox(_spec(tmp_path, runtime_dir))
        assert await box.start() is None
        try:
            assert box._server is not None
            port = box._server.sockets[0].getsockname()[1]
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/2018-06-01/runtime/invocation/nope/response",
                data=b"{}", method="POST")
            try:
                await asyncio.to_thread(urllib.request.urlopen, req, None, 5)
            except urllib.error.HTTPError as e:
                return e.code
            return 200
        finally:
            await box.kill()

    assert _run(go()) == 400


def test_memory_limit_fails_the_invocation_and_retires_the_environment(
        tmp_path: Path, runtime_dir: Path) -> None:
    async def go() -> list[Any]:
        pool = Pool(_spec(tmp_path, runtime_dir, memory_mb=80), 1)
        try:
            return [await pool.invoke(e, "arn") for e in (b"{}", b'{"mb": 120}', b"{}")]
        finally:
            await pool.close()

    first, big, again = _run(go())
    assert first.error is None and first.max_memory_mb is not None and first.max_memory_mb < 80
    assert big.error is not None and big.error["errorType"] == "Runtime.OutOfMemory"
    assert again.error is None and again.cold
    assert json.loads(again.payload)["pid"] != json.loads(first.payload)["pid"]


def test_a_dead_environment_is_replaced_and_its_request_in_flight_fails(
        tmp_path: Path, runtime_dir: Path) -> None:
    async def go() -> list[Any]:
        pool = Pool(_spec(tmp_path, runtime_dir), 1)
        try:
            first = await pool.invoke(b"{}", "arn")
            os.kill(json.loads(first.payload)["pid"], signal.SIGKILL)
            await asyncio.sleep(0.2)
            second = await pool.invoke(b"{}", "arn")
            exited = await pool.invoke(b'{"exit": true}', "arn")
            third = await pool.invoke(b"{}", "arn")
            return [first, second, exited, third]
        finally:
            await pool.close()

    first, second, exited, third = _run(go())
    # An environment that died while idle is replaced before the next request...
    assert second.error is None and second.cold
    # ...and Lambda does not retry a synchronous invocation: the request in flight fails,
    assert exited.error is not None and exited.error["errorType"] == "Runtime.ExitError"
    # and the next one gets a fresh environment.
    assert third.error is None and third.cold
    assert json.loads(third.payload)["pid"] != json.loads(first.payload)["pid"]
