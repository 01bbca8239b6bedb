"""Lambda execution environments: the Runtime API and the processes that poll it.

Each ``Sandbox`` is one execution environment, as Lambda has it: a process of the function's
runtime interpreter (``python3.13 -m awslambdaric <handler>``, AWS's own runtime interface
client, the code Lambda's managed Python runtimes run) started in a clean environment —
``sys.path`` is the task root (the deployed zip, extracted read-only), the layers' ``python/``
and the runtime's own directory; nothing of the project's virtualenv — with exactly the
function's configured variables plus Lambda's reserved ones, and an
``AWS_LAMBDA_RUNTIME_API`` that points at this sandbox's own Runtime API server:

- ``GET  /2018-06-01/runtime/invocation/next`` — waits for the next event (the first call ends
  INIT); answers it with the ``Lambda-Runtime-*`` headers;
- ``POST /2018-06-01/runtime/invocation/{id}/response`` — the result (202; over 6 MB: 413 and
  ``Function.ResponseSizeTooLarge``);
- ``POST /2018-06-01/runtime/invocation/{id}/error`` — an unhandled error (202);
- ``POST /2018-06-01/runtime/init/error`` — INIT failed (202; the process then exits).

The platform's side is here too: the init timeout (10 s, as Lambda's), the function timeout
(the process is killed, ``Sandbox.Timedout``), the memory limit (peak RSS over the
configured size kills the environment, ``Runtime.OutOfMemory``), Lambda's limit of 1,024 file
descriptors, and the ``START`` / ``END`` / ``REPORT`` lines written to the function's log beside
what the process prints. An environment that fails to start (no descriptor left, no
interpreter, INIT failed or cancelled) is reaped: its process killed and waited for, its
Runtime API and log closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import resource
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

API = "/2018-06-01/runtime"
INIT_TIMEOUT_S = 10.0  # Lambda's INIT phase limit for on-demand functions
MAX_RESPONSE = 6 * 1024 * 1024  # synchronous invocation response limit
MAX_FDS = 1024  # an execution environment's file descriptors
_KILL_GRACE_S = 2.0


@dataclass(frozen=True)
class SandboxSpec:
    """How to start one execution environment of a function version."""

    runtime: str  # python3.13
    python: Path  # the runtime's interpreter
    handler: str  # module.function
    task_root: Path  # the deployed zip, extracted
    layers: tuple[Path, ...]  # each layer, extracted (its python/ goes on sys.path)
    runtime_dir: Path  # awslambdaric and its dependencies (Lambda's /var/runtime)
    env: dict[str, str]  # the function's variables and Lambda's reserved ones
    timeout_s: float
    memory_mb: int | None  # None: not enforced
    log_path: Path
    function_arn: str
    version: str


@dataclass(frozen=True)
class Result:
    """What one invocation produced, as the platform saw it."""

    payload: bytes | None  # the function's response (JSON text), None on error
    error: dict[str, Any] | None  # {"errorType", "errorMessage", ...}
    request_id: str
    cold: bool
    init_ms: float | None  # cold starts: INIT duration
    duration_ms: float
    max_memory_mb: int | None
    timed_out: bool = False


def runtime_error(kind: str, message: str) -> dict[str, Any]:
    return {"errorType": kind, "errorMessage": message}


def python_path(spec: SandboxSpec) -> str:
    """Lambda's search order: task root, each layer's python/lib/pythonX.Y/site-packages and
    python/, then the runtime's directory."""
    parts = [str(spec.task_root)]
    for layer in spec.layers:
        parts += [str(layer / "python" / "lib" / spec.runtime / "site-packages"),
                  str(layer / "python")]
    parts.append(str(spec.runtime_dir))
    return os.pathsep.join(parts)


def _peak_rss_mb(status: int) -> int | None:
    """The peak RSS (``VmHWM``) in ``/proc/<pid>/status``, read again through its open
    descriptor (``status``): no open and close per invocation."""
    try:
        data = os.pread(status, 4096, 0)
    except OSError:  # the process is gone
        return None
    start = data.find(b"VmHWM:")
    if start < 0:
        return None
    return math.ceil(int(data[start + 6:data.index(b"kB", start)]) / 1024)


@dataclass
class _Pending:
    request_id: str
    event: bytes
    deadline_ms: int
    invoked_arn: str
    done: asyncio.Future[tuple[bytes | None, dict[str, Any] | None]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    timed_out: bool = False

    def finish(self, payload: bytes | None, error: dict[str, Any] | None) -> None:
        if not self.done.done():
            self.done.set_result((payload, error))


class Sandbox:
    """One execution environment: a runtime process and the Runtime API it polls."""

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self.proc: asyncio.subprocess.Process | None = None
        self.init_ms: float | None = None
        self.invocations = 0
        self._server: asyncio.base_events.Server | None = None
        self._web: web.Server | None = None
        self._ready: asyncio.Future[dict[str, Any] | None] | None = None  # None: INIT ok
        # The event handed over: to a /next already waiting, or kept for the next /next.
        self._waiting: asyncio.Future[_Pending] | None = None
        self._queued: _Pending | None = None
        self._current: _Pending | None = None  # handed out, not yet answered
        # The process's wait, held here: its callback fails what the process was given.
        self._exited: asyncio.Future[Any] | None = None
        self._log = -1
        self._status = -1  # /proc/<pid>/status, open while the process runs

    # -- the Runtime API ------------------------------------------------------------------
    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if request.method == "GET" and path == f"{API}/invocation/next":
            return await self._next()
        if request.method == "POST" and path.startswith(f"{API}/invocation/"):
            request_id, _, what = path[len(API) + 12:].partition("/")
            return await self._result(request, request_id, what)
        if request.method == "POST" and path == f"{API}/init/error":
            body = await request.content.read()
            error = _error_body(body, request.headers, "Runtime.Unknown")
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(error)
            return _accepted()
        return web.json_response({"errorMessage": f"no such route {request.method} {path}",
                                  "errorType": "InvalidRequest"}, status=404)

    async def _next(self) -> web.StreamResponse:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)  # the first /next ends INIT
        pending, self._queued = self._queued, None
        if pending is None:
            self._waiting = asyncio.get_running_loop().create_future()
            pending = await self._waiting
            self._waiting = None
        self._current = pending
        self._write_log(f"START RequestId: {pending.request_id} Version: {self.spec.version}\n")
        return web.Response(body=pending.event, headers={
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": pending.request_id,
            "Lambda-Runtime-Deadline-Ms": str(pending.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": pending.invoked_arn,
            "Lambda-Runtime-Trace-Id": _trace_id(),
        })

    async def _result(self, request: web.BaseRequest, request_id: str,
                      what: str) -> web.StreamResponse:
        pending = self._current
        if pending is None or pending.request_id != request_id or what not in (
                "response", "error"):
            await request.content.read()
            return web.json_response({"errorMessage": f"unknown request id {request_id}",
                                      "errorType": "InvalidRequestID"}, status=400)
        body = await request.content.read()
        self._current = None
        if what == "error":
            error = _error_body(body, request.headers, "Function.Unhandled")
            pending.finish(None, error)
            return _accepted()
        if len(body) > MAX_RESPONSE:
            pending.finish(None, runtime_error(
                "Function.ResponseSizeTooLarge",
                f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload "
                f"size ({MAX_RESPONSE} bytes)."))
            return web.json_response({"errorMessage": "response too large",
                                      "errorType": "RequestEntityTooLarge"}, status=413)
        pending.finish(body, None)
        return _accepted()

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> dict[str, Any] | None:
        """Start the process and run INIT; the error that ended INIT, or None."""
        try:
            done, exited = await self._launch()
        except BaseException:  # out of descriptors, no interpreter, cancelled: reaped
            await asyncio.shield(self.kill())
            raise
        if self._ready in done and self._ready.result() is None:
            return None
        if self._ready in done:
            error = self._ready.result()
        elif exited in done:
            error = self._exit_error()
            error["errorMessage"] += " during INIT"
        else:
            error = runtime_error("Runtime.InitTimeout",
                                  f"INIT did not finish within {INIT_TIMEOUT_S:.0f} seconds")
        await self.kill()
        return error

    async def _launch(self) -> tuple[set[asyncio.Future[Any]], asyncio.Future[Any]]:
        """Start the Runtime API and the process; wait for INIT's end (what ended it)."""
        loop = asyncio.get_running_loop()
        ready = self._ready = loop.create_future()
        self._web = web.Server(self._serve, access_log=None)
        self._server = await loop.create_server(self._web, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        spec = self.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        env = {**spec.env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
               "PYTHONPATH": python_path(spec)}
        started = time.perf_counter()
        # -s -S: no user or site-packages of the interpreter; only PYTHONPATH (Lambda's).
        self.proc = await asyncio.create_subprocess_exec(
            str(spec.python), "-s", "-S", "-m", "awslambdaric", spec.handler,
            cwd=spec.task_root, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log, stderr=self._log, start_new_session=True)
        with contextlib.suppress(OSError):  # Lambda's descriptor limit, not the daemon's
            resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (MAX_FDS, MAX_FDS))
        with contextlib.suppress(OSError):
            self._status = os.open(f"/proc/{self.proc.pid}/status", os.O_RDONLY)
        exited = self._exited = asyncio.ensure_future(self.proc.wait())
        exited.add_done_callback(self._on_exit)
        done, _ = await asyncio.wait({ready, exited}, timeout=INIT_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        self.init_ms = (time.perf_counter() - started) * 1000
        return done, exited

    async def invoke(self, event: bytes, invoked_arn: str, *, cold: bool = False,
                     request_id: str | None = None) -> Result:
        """Run one event in this environment (which must be idle)."""
        spec = self.spec
        request_id = request_id or str(uuid.uuid4())
        started = time.perf_counter()
        deadline_ms = int((time.time() + spec.timeout_s) * 1000)
        pending = _Pending(request_id, event, deadline_ms, invoked_arn)
        self.invocations += 1
        assert self.proc is not None
        if not self.alive:
            pending.finish(None, self._exit_error())
        elif self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(pending)
        else:
            self._queued = pending
        timer = asyncio.get_running_loop().call_later(spec.timeout_s, self._on_timeout, pending)
        try:
            payload, error = await pending.done
        finally:
            timer.cancel()
        duration_ms = (time.perf_counter() - started) * 1000
        timed_out = pending.timed_out
        if timed_out:
            self._write_log(f"{_stamp()} {request_id} Task timed out after "
                            f"{spec.timeout_s:.2f} seconds\n")
        rss = _peak_rss_mb(self._status) if self.alive else None
        if (error is None and spec.memory_mb is not None and rss is not None
                and rss > spec.memory_mb):
            payload, error = None, runtime_error(
                "Runtime.OutOfMemory", f"Runtime exited with error: signal: killed "
                f"(used {rss} MB of {spec.memory_mb} MB)")
        if error is not None and (timed_out or not self.alive or error["errorType"] in (
                "Runtime.OutOfMemory", "Function.ResponseSizeTooLarge")):  # Lambda resets it
            await self.kill()
        init_ms = self.init_ms if cold else None
        self._report(request_id, duration_ms, rss, init_ms, error)
        return Result(payload, error, request_id, cold, init_ms, duration_ms, rss, timed_out)

    def _on_timeout(self, pending: _Pending) -> None:
        pending.timed_out = True
        pending.finish(None, runtime_error(
            "Sandbox.Timedout", f"Task timed out after {self.spec.timeout_s:.2f} seconds"))

    def _exit_error(self) -> dict[str, Any]:
        code = self.proc.returncode if self.proc is not None else None
        return runtime_error("Runtime.ExitError", f"Runtime exited with error: {_exit_text(code)}")

    def _on_exit(self, _: object) -> None:
        """The process ended: whatever it was given fails."""
        for pending in (self._current, self._queued):
            if pending is not None:
                pending.finish(None, self._exit_error())

    def _report(self, request_id: str, duration_ms: float, rss: int | None,
                init_ms: float | None, error: dict[str, Any] | None) -> None:
        billed = math.ceil(duration_ms + (init_ms or 0.0))  # INIT is billed (since 2025-08)
        line = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
                f"Billed Duration: {billed} ms\tMemory Size: {self.spec.memory_mb or 0} MB\t"
                f"Max Memory Used: {rss or 0} MB\t")
        if init_ms is not None:
            line += f"Init Duration: {init_ms:.2f} ms\t"
        if error is not None and error.get("errorType", "").startswith(("Sandbox.", "Runtime.")):
            line += f"Status: {'timeout' if 'Timedout' in error['errorType'] else 'error'}\t"
            line += f"Error Type: {error['errorType']}\t"
        self._write_log(f"END RequestId: {request_id}\n{line}\n")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), _KILL_GRACE_S)
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._web is not None:
            await self._web.shutdown(0.1)  # the process's connections, a /next still waiting
            self._web = None
        if self._log >= 0:
            os.close(self._log)
            self._log = -1
        if self._status >= 0:
            os.close(self._status)
            self._status = -1

    def _write_log(self, text: str) -> None:
        if self._log >= 0:
            os.write(self._log, text.encode())


_ACCEPTED = json.dumps({"status": "OK"}).encode()


def _accepted() -> web.Response:
    return web.Response(body=_ACCEPTED, status=202, content_type="application/json")


def _error_body(body: bytes, headers: Any, default_type: str) -> dict[str, Any]:
    try:
        error = json.loads(body or b"{}")
    except ValueError:
        error = None
    if not isinstance(error, dict):
        error = {"errorMessage": body.decode("utf-8", "replace")}
    error.setdefault("errorType", headers.get("Lambda-Runtime-Function-Error-Type")
                     or default_type)
    error.setdefault("errorMessage", "")
    return error


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}"
    return f"exit status {code}"


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]}" \
           ";Sampled=0"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
