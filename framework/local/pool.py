"""The execution environments of one function version, reused like Lambda reuses them.

At most ``concurrency`` environments exist at once (the function's reserved concurrency, else
the local default); an invocation takes an idle one (a warm start) or starts a new one (a cold
start, INIT first). An environment that timed out, ran out of memory or exited is discarded;
the next invocation starts a fresh one; so is one that failed to start (its process reaped by
``Sandbox.start``) or whose invocation was cancelled.
"""

from __future__ import annotations

import asyncio

from .sandbox import Result, Sandbox, SandboxSpec


class PoolClosed(Exception):
    """The function version was replaced or the daemon is stopping."""


class Pool:
    def __init__(self, spec: SandboxSpec, concurrency: int) -> None:
        self.spec = spec
        self.concurrency = max(1, concurrency)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._idle: list[Sandbox] = []
        self._all: set[Sandbox] = set()
        self._closed = False

    async def invoke(self, event: bytes, invoked_arn: str) -> Result:
        async with self._slots:
            if self._closed:
                raise PoolClosed(self.spec.function_arn)
            sandbox = None
            while self._idle and sandbox is None:
                sandbox = self._idle.pop()
                if not sandbox.alive:  # exited while idle
                    self._all.discard(sandbox)
                    await sandbox.kill()
                    sandbox = None
            cold = sandbox is None
            if sandbox is None:
                sandbox = Sandbox(self.spec)
                self._all.add(sandbox)
                try:
                    error = await sandbox.start()
                except BaseException:
                    self._all.discard(sandbox)  # start reaped what it had started
                    raise
                if error is not None:
                    self._all.discard(sandbox)
                    return Result(None, error, "", True, sandbox.init_ms, 0.0, None)
            try:
                result = await sandbox.invoke(event, invoked_arn, cold=cold)
            except BaseException:  # cancelled mid-invocation: the environment is not reused
                self._all.discard(sandbox)
                await asyncio.shield(sandbox.kill())
                raise
            if sandbox.alive and not self._closed:
                self._idle.append(sandbox)
            else:
                self._all.discard(sandbox)
                await sandbox.kill()
            return result

    def pids(self) -> list[int]:
        return [pid for s in self._all if s.alive and (pid := s.pid) is not None]

    async def close(self) -> None:
        self._closed = True
        sandboxes, self._all, self._idle = list(self._all), set(), []
        await asyncio.gather(*(s.kill() for s in sandboxes))

