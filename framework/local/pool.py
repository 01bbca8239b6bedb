"""Worker processes and the bounded pool that reuses them."""

from __future__ import annotations

import contextlib
import json
import marshal
import mmap
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import direct_worker

if TYPE_CHECKING:
    from .direct import DirectHub

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
_HEADER = struct.Struct(">I")
INIT_TIMEOUT_S = 10.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class WorkerTimeout(Exception):
    """The worker did not answer before its deadline (it has been killed)."""


class WorkerDied(Exception):
    """The worker exited or broke the protocol."""


@dataclass(frozen=True)
class WorkerSpec:
    """How to start workers for one (function, version, code)."""

    code_dir: Path
    env: dict[str, str]
    timeout_s: float
    log_path: Path
    memory_mb: int | None = None  # RSS above this fails the invocation (Runtime.OutOfMemory)
    direct: bool = False  # give workers a channel + shared page for the direct path
    page_dir: Path | None = None  # pages as files here (they outlive a crashed daemon)


@dataclass(frozen=True)
class Outcome:
    payload: Any
    error: dict[str, Any] | None
    cold_start: bool
    timed_out: bool
    init_ms: float | None = None
    max_rss_mb: float | None = None


class Worker:
    """One ``worker.py`` subprocess speaking length-prefixed JSON over its stdin/stdout."""

    def __init__(self, spec: WorkerSpec) -> None:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = spec.env
        self.channel: socket.socket | None = None  # the direct path (see direct.py)
        self.shm: mmap.mmap | None = None
        self.page_path: Path | None = None
        self.conns = 0  # connections handed to this worker
        passed: tuple[int, ...] = ()
        child = None
        if spec.direct:
            self.channel, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            if spec.page_dir is not None:
                spec.page_dir.mkdir(parents=True, exist_ok=True)
                region = spec.env.get("AWS_REGION", "us-east-1")
                self.page_path = spec.page_dir / f"{region}.{uuid.uuid4().hex}.page"
                shm_fd = os.open(self.page_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            else:
                shm_fd = os.memfd_create("mlops-worker")
            os.ftruncate(shm_fd, direct_worker.SHM_SIZE)
            self.shm = mmap.mmap(shm_fd, direct_worker.SHM_SIZE)
            passed = (child.fileno(), shm_fd)
            env = {**env, "MLOPS_DIRECT_CHANNEL_FD": str(child.fileno()),
                   "MLOPS_DIRECT_SHM_FD": str(shm_fd),
                   "MLOPS_DIRECT_TIMEOUT_MS": str(spec.timeout_s * 1000),
                   "MLOPS_DIRECT_SPIN_US": os.environ.get("MLOPS_LOCAL_SPIN_US", "250")}
            if spec.memory_mb is not None:
                env["MLOPS_DIRECT_MEMORY_MB"] = str(spec.memory_mb)
        try:
            with spec.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-s", str(WORKER_SCRIPT)],
                    cwd=spec.code_dir,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    close_fds=True,
                    pass_fds=passed,
                )
        finally:
            if child is not None:
                child.close()
            if passed:
                os.close(passed[1])
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._tx: IO[bytes] = self.proc.stdin
        self._rx_fd = self.proc.stdout.fileno()
        self._buffer = b""
        self.init_ms: float | None = None
        try:
            self._statm: int | None = os.open(f"/proc/{self.proc.pid}/statm", os.O_RDONLY)
        except OSError:
            self._statm = None

    def rss_mb(self) -> float | None:
        """Resident memory of the worker now (Linux), in MB."""
        if self._statm is None:
            return None
        try:
            fields = os.pread(self._statm, 128, 0).split()
            return int(fields[1]) * _PAGE / (1024 * 1024)
        except (OSError, IndexError, ValueError):
            return None

    def _read(self, count: int, deadline: float) -> bytes:
        while len(self._buffer) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout()
            ready, _, _ = select.select([self._rx_fd], [], [], remaining)
            if not ready:
                raise WorkerTimeout()
            chunk = os.read(self._rx_fd, max(65536, count - len(self._buffer)))
            if not chunk:
                raise WorkerDied(f"worker exited with code {self.proc.wait()}")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def receive(self, deadline: float) -> dict[str, Any]:
        (length,) = _HEADER.unpack(self._read(_HEADER.size, deadline))
        message: dict[str, Any] = json.loads(self._read(length, deadline))
        return message

    def send(self, message: dict[str, Any]) -> None:
        # Requests travel as marshal (same interpreter on both ends; ~5x cheaper than JSON),
        # tagged b"M"; anything marshal refuses goes as JSON, tagged b"J". Replies are JSON.
        try:
            data = b"M" + marshal.dumps(message)
        except ValueError:
            data = b"J" + json.dumps(message).encode()
        try:
            self._tx.write(_HEADER.pack(len(data)) + data)
            self._tx.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(f"worker is gone: {exc}") from exc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        # The hub closes the channel and the page once it has read the worker's last words.
        if self._statm is not None:
            with contextlib.suppress(OSError):
                os.close(self._statm)
            self._statm = None
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


_LOST = Outcome(None, None, False, False)  # sentinel: the worker was killed by a signal
_KILLED_IN_INIT: dict[str, Any] = {"errorType": "Runtime.ExitError",
                                   "errorMessage": "worker killed during init", "stackTrace": []}


def _runtime_error(kind: str, message: str) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": kind, "stackTrace": []}


class Pool:
    """Workers for one (function, version, code): at most ``concurrency`` at a time, reused."""

    def __init__(self, spec: WorkerSpec, concurrency: int, hub: DirectHub | None = None,
                 ) -> None:
        self.spec = spec
        self.hub = hub if spec.direct else None
        self.concurrency = max(1, concurrency)
        self._starting = 0
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._closed = False
        self.lost = 0  # workers that died while serving

    def _start(self) -> tuple[Worker | None, dict[str, Any] | None]:
        worker = Worker(self.spec)
        with self._lock:
            self._all.add(worker)
        try:
            ready = worker.receive(time.monotonic() + max(INIT_TIMEOUT_S, self.spec.timeout_s))
        except (WorkerTimeout, WorkerDied) as exc:
            self.forget(worker)
            if isinstance(exc, WorkerDied) and (worker.proc.returncode or 0) < 0:
                return None, _KILLED_IN_INIT  # killed from outside while starting
            kind = "Runtime.InitTimeout" if isinstance(exc, WorkerTimeout) else "Runtime.ExitError"
            return None, _runtime_error(kind, f"worker init failed: {exc or 'timed out'}")
        if ready.get("type") != "ready":
            self.forget(worker)
            return None, dict(ready.get("error") or _runtime_error("Runtime.Unknown", "init"))
        worker.init_ms = float(ready.get("init_ms") or 0.0)
        if self.hub is not None:
            self.hub.attach(worker, self)
        return worker, None

    def _discard(self, worker: Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def invoke(self, event: Any, request_id: str, invoked_arn: str) -> Outcome:
        with self._slots:
            outcome = self._invoke(event, request_id, invoked_arn)
            if outcome is _LOST:
                # The execution environment was killed from outside (a signal: OOM killer,
                # an operator, a chaos test) before it answered: the request never ran to
                # completion, so it is replayed once on a fresh worker, as a new sandbox.
                outcome = self._invoke(event, request_id, invoked_arn, replay=True)
            assert outcome is not _LOST
            return outcome

    def _invoke(self, event: Any, request_id: str, invoked_arn: str, replay: bool = False,
                ) -> Outcome:
        with self._lock:
            if self._closed:
                raise WorkerDied("pool is closed")
            worker = None
            if self._idle:  # the one with the fewest handed connections: it waits least
                best = min(range(len(self._idle)), key=lambda i: self._idle[i].conns)
                worker = self._idle.pop(best)
        cold = worker is None
        if worker is None:
            worker, init_error = self._start()
            if worker is None:
                if init_error is _KILLED_IN_INIT and not replay:
                    self.lost += 1
                    return _LOST
                return Outcome(None, init_error, True, False)
        deadline = time.monotonic() + self.spec.timeout_s
        message = {
            "event": event,
            "request_id": request_id,
            "invoked_arn": invoked_arn,
            "remaining_ms": self.spec.timeout_s * 1000,
        }
        try:
            worker.send(message)
            reply = worker.receive(deadline)
        except WorkerTimeout:
            self._discard(worker)
            text = f"Task timed out after {self.spec.timeout_s:.2f} seconds"
            return Outcome(None, _runtime_error("Sandbox.Timedout", text), cold, True)
        except WorkerDied as exc:
            self._discard(worker)
            self.lost += 1
            if not replay and (worker.proc.returncode or 0) < 0:
                return _LOST
            return Outcome(None, _runtime_error("Runtime.ExitError", str(exc)), cold, False)
        init_ms = worker.init_ms if cold else None
        rss = worker.rss_mb()
        limit = self.spec.memory_mb
        if limit is not None and rss is not None and rss > limit:
            self._discard(worker)
            text = f"worker used {rss:.0f} MB of memory, more than its {limit} MB"
            error = _runtime_error("Runtime.OutOfMemory", text)
            return Outcome(None, error, cold, False, init_ms, rss)
        with self._lock:
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)
        if reply.get("type") == "error":
            return Outcome(None, dict(reply["error"]), cold, False, init_ms, rss)
        return Outcome(reply.get("payload"), None, cold, False, init_ms, rss)

    # -- the direct path ------------------------------------------------------------------
    def direct_target(self) -> Worker | None:
        """A warm worker to hand a connection to (its ``conns`` already counted), or None
        (and a new worker starting) while the pool can still grow."""
        with self._lock:
            if self._closed:
                return None
            ready = [w for w in self._idle if w.channel is not None]
            free = [w for w in ready if w.conns == 0]
            grow = len(self._all) + self._starting < self.concurrency
            if free or (ready and not grow):
                worker = free[0] if free else min(ready, key=lambda w: w.conns)
                worker.conns += 1
                return worker
            if grow:
                self._starting += 1
        if grow:
            threading.Thread(target=self._prestart, name="prestart", daemon=True).start()
        return None

    def _prestart(self) -> None:
        try:
            worker, _ = self._start()
        finally:
            with self._lock:
                self._starting -= 1
        if worker is None:
            return
        with self._lock:
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)

    def forget(self, worker: Worker) -> None:
        """The hub saw ``worker`` die: never hand it out again."""
        with self._lock:
            self._all.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)
        worker.kill()
        if worker.channel is not None:
            worker.channel.close()
        if worker.shm is not None:
            with contextlib.suppress(BufferError, ValueError):
                worker.shm.close()
        if worker.page_path is not None:
            worker.page_path.unlink(missing_ok=True)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return sorted(w.proc.pid for w in self._all)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
        for worker in workers:
            worker.kill()
