"""An execution environment that fails to start is reaped: no process, socket or log descriptor
outlives the failure, and the pool forgets it (its bound on environments stays true)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

from framework.local.pool import Pool
from framework.local.sandbox import MAX_FDS, SandboxSpec

T = TypeVar("T")
ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"


def _spec(tmp_path: Path, python: Path, log_path: Path | None = None) -> SandboxSpec:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    return SandboxSpec(runtime="python3.13", python=python, handler="fn.handler",
                       task_root=code, layers=(), runtime_dir=tmp_path, env={"PATH": "/bin"},
                       timeout_s=5, memory_mb=None, log_path=log_path or tmp_path / "fn.log",
                       function_arn=ARN, version="1")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    loop = uvloop.new_event_loop()  # the data plane's loop
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _left_open(attempt: Callable[[], Awaitable[None]]) -> int:
    """Descriptors one attempt leaves open; measured on a second attempt, once the loop has
    opened what it keeps for good (``/dev/null`` for a child's stdin)."""
    await attempt()
    before = _fds()
    await attempt()
    return _fds() - before


def test_missing_interpreter_leaves_nothing_open(tmp_path: Path) -> None:
    pool = Pool(_spec(tmp_path, tmp_path / "no-such-python"), 2)

    async def attempt() -> None:
        with pytest.raises(FileNotFoundError):
            await pool.invoke(b"{}", ARN)
        assert pool.pids() == []

    assert _run(_left_open(attempt)) == 0  # its Runtime API socket and its log are closed


def test_unwritable_log_leaves_nothing_open(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    pool = Pool(_spec(tmp_path, Path("/bin/sh"), tmp_path / "file" / "fn.log"), 2)

    async def attempt() -> None:
        with pytest.raises(OSError):
            await pool.invoke(b"{}", ARN)

    assert _run(_left_open(attempt)) == 0  # its Runtime API socket is closed


def test_init_cancelled_kills_and_waits_for_the_process(tmp_path: Path) -> None:
    """A runtime whose INIT never ends, its invocation cancelled (the daemon stopping, the
    caller gone): the process is killed and waited for, not left running."""
    stalled = tmp_path / "python"
    stalled.write_text("#!/bin/sh\nexec sleep 600\n")
    stalled.chmod(stalled.stat().st_mode | stat.S_IXUSR)

    pool = Pool(_spec(tmp_path, stalled), 2)

    async def attempt() -> None:
        task = asyncio.ensure_future(pool.invoke(b"{}", ARN))
        for _ in range(200):
            if pool.pids():
                break
            await asyncio.sleep(0.05)
        (pid,) = pool.pids()
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert any(line.startswith("Max open files") and line.split()[3:5] == [
            str(MAX_FDS), str(MAX_FDS)] for line in limits.splitlines())  # Lambda's limit
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.pids() == []
        assert not Path(f"/proc/{pid}").exists()  # killed and reaped: not even a zombie

    assert _run(_left_open(attempt)) == 0
