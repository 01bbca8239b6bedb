"""Pool semantics beyond init/reuse/timeout: memory limit and replay after a SIGKILL."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from framework.local.pool import Pool, WorkerSpec

HANDLER = '''
import os
HOLD = []

def handler(event, context):
    if event.get("mb"):
        HOLD.append(b"x" * (event["mb"] * 1024 * 1024))
    return {"pid": os.getpid()}
'''


def _pool(tmp_path: Path, memory_mb: int | None) -> Pool:
    code = tmp_path / "code"
    (code / "handlers").mkdir(parents=True)
    (code / "handlers" / "__init__.py").write_text("")
    (code / "handlers" / "mem.py").write_text(HANDLER)
    env = {"PATH": os.environ.get("PATH", ""), "LAMBDA_TASK_ROOT": str(code),
           "_HANDLER": "handlers.mem.handler", "PYTHONPATH": "", "HOME": str(tmp_path)}
    spec = WorkerSpec(code_dir=code, env=env, timeout_s=10, log_path=tmp_path / "w.log",
                      memory_mb=memory_mb)
    return Pool(spec, 1)


def test_memory_limit_fails_the_invocation_and_retires_the_worker(tmp_path: Path) -> None:
    pool = _pool(tmp_path, memory_mb=80)
    try:
        first = pool.invoke({}, "r1", "arn")
        assert first.error is None and first.max_rss_mb is not None and first.max_rss_mb < 80
        big = pool.invoke({"mb": 120}, "r2", "arn")
        assert big.error is not None and big.error["errorType"] == "Runtime.OutOfMemory"
        again = pool.invoke({}, "r3", "arn")
        assert again.error is None and again.cold_start
        assert again.payload["pid"] != first.payload["pid"]
    finally:
        pool.close()


def test_killed_worker_is_replaced_and_the_request_replayed(tmp_path: Path) -> None:
    pool = _pool(tmp_path, memory_mb=None)
    try:
        first = pool.invoke({}, "r1", "arn")
        os.kill(first.payload["pid"], signal.SIGKILL)
        second = pool.invoke({}, "r2", "arn")
        assert second.error is None and second.payload["pid"] != first.payload["pid"]
        assert pool.lost == 1
    finally:
        pool.close()


def test_worker_exiting_by_itself_is_an_error_not_a_replay(tmp_path: Path) -> None:
    pool = _pool(tmp_path, memory_mb=None)
    code = pool.spec.code_dir / "handlers" / "mem.py"
    code.write_text(HANDLER + "\nimport sys\ndef crash(event, context):\n    sys.exit(3)\n")
    pool.spec.env["_HANDLER"] = "handlers.mem.crash"
    try:
        outcome = pool.invoke({}, "r1", "arn")
        assert outcome.error is not None and outcome.error["errorType"] == "Runtime.ExitError"
    finally:
        pool.close()
