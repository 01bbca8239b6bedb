"""The worker's side of the direct path: a warm execution environment answering HTTP itself.

Standard library only (``worker.py`` loads this file by path, before the deployed code is on
``sys.path``; ``apigw.py`` is loaded the same way and builds the very events the gateway
builds).

After the gateway has answered a connection's first request through the runner, it may hand
the connection (its file descriptor, over the worker's *channel*) to a warm worker of the
function version that answered it. The worker then reads the following requests itself,
builds their API Gateway v2.0 events, invokes the handler, writes the responses and reports
each one to the hub (``direct.py``): capture lines, metrics, and the response bytes. A request
for another route, one the worker does not serve (chunked bodies, ``Expect``, HTTP/1.0,
oversized heads or bodies), or any request after the routing changed (the *generation* in the
shared page moved) goes back to the gateway with the bytes read so far.

Per worker, a shared memory page (``memfd``) says what the worker is doing, so that the hub
can finish the work of a worker that died: the state, the connection, the request's start
time (for the timeout), the request id and the raw request (to replay it on a fresh worker).

Channel frames (both ways): 4-byte big-endian length + ``marshal`` bytes (both ends run the
same interpreter). Hub → worker: ``("conn", id, route, generation, prefix)`` with the socket
as ``SCM_RIGHTS``; ``("sync", token)``. Worker → hub: ``("done", id, request_id, status,
seconds, kind, capture, response, sent_before, seq)``, ``("back", id, prefix)``,
``("closed", id)``, ``("synced", token)``.

A ``done`` report is written to the shared page *before* the response (so a worker killed
after answering loses no capture record: the hub reads the page), and sent over the channel
in batches, off the request's path: when the worker is about to sleep, every
``FLUSH_EVERY`` reports, or when the hub asks (``sync``: the gateway's ``/_mlops/flush``).
``seq`` numbers the reports, so the hub counts a report found both on the page and on the
channel once.
"""

from __future__ import annotations

import marshal
import mmap
import os
import resource
import select
import socket
import struct
import time
import uuid
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, NamedTuple

FRAME = struct.Struct(">I")

# -- the shared page --------------------------------------------------------------------
IDLE, RUNNING, ANSWERED = 0, 1, 2
STATE = struct.Struct("<I")  # offset 0
CONN = struct.Struct("<I")  # offset 4
STARTED = struct.Struct("<d")  # offset 8: time.monotonic() (system-wide on Linux)
SENT_BEFORE = struct.Struct("<Q")  # offset 16: bytes the worker wrote on this connection
REQUEST_LEN = struct.Struct("<I")  # offset 24 (0: too large to keep)
GENERATION = struct.Struct("<Q")  # offset 32: written by the hub
REQUEST_ID = 40  # 36 ASCII bytes
PENDING_LEN = struct.Struct("<I")  # offset 76: bytes of reports not yet sent to the hub
HUB_SEQ = struct.Struct("<Q")  # offset 80: the last report the hub counted (hub-written)
PENDING_AT = 128
PENDING_MAX = 1 << 20
REQUEST_AT = PENDING_AT + PENDING_MAX
MAX_HEAD = 64 * 1024
MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous payload limit; the gateway answers 413
SHM_SIZE = REQUEST_AT + MAX_HEAD + MAX_BODY  # sparse: only touched pages cost memory
FLUSH_EVERY = 32  # reports; and whenever the worker is about to sleep
RSS_EVERY = 16  # requests between two looks at the peak resident memory

CAPTURE_KEY = "mlopsCapture"  # framework.runtime.capture.CAPTURE_KEY (handlers' side)


def pending(shm: mmap.mmap) -> bytes:
    """The reports a worker wrote to its page but had not sent yet."""
    length = PENDING_LEN.unpack_from(shm, 76)[0]
    return shm[PENDING_AT:PENDING_AT + length]


def read_state(shm: mmap.mmap) -> tuple[int, int, float, int, bytes, str]:
    """(state, connection, started, sent before, raw request, request id) of a page."""
    state = STATE.unpack_from(shm, 0)[0]
    conn = CONN.unpack_from(shm, 4)[0]
    started = STARTED.unpack_from(shm, 8)[0]
    sent = SENT_BEFORE.unpack_from(shm, 16)[0]
    length = REQUEST_LEN.unpack_from(shm, 24)[0]
    request_id = shm[REQUEST_ID:REQUEST_ID + 36].decode("ascii", "replace")
    return state, conn, started, sent, shm[REQUEST_AT:REQUEST_AT + length], request_id


class Report(NamedTuple):
    """A ``done`` report's fields (on the wire: ``("done", *fields)``, a plain tuple)."""

    conn: int
    request_id: str
    status: int
    seconds: float
    kind: str | None
    capture: Any  # the handler's capture record, or None
    response: bytes
    sent_before: int  # bytes the worker had written on the connection before this answer
    seq: int


def reports(data: bytes) -> list[Report]:
    """The ``done`` reports in a run of frames (a page's pending bytes)."""
    return [Report(*m[1:]) for m in Frames().feed(data, []) if m[0] == "done"]


def frame(message: Any) -> bytes:
    data = marshal.dumps(message)
    return FRAME.pack(len(data)) + data


class Frames:
    """Reassembles frames (and the descriptors that came with them) from a stream socket."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.fds: list[int] = []

    def feed(self, data: bytes, fds: list[int]) -> list[Any]:
        self.buffer += data
        self.fds += fds
        out = []
        while len(self.buffer) >= FRAME.size:
            (length,) = FRAME.unpack_from(self.buffer, 0)
            if len(self.buffer) < FRAME.size + length:
                break
            out.append(marshal.loads(bytes(self.buffer[FRAME.size:FRAME.size + length])))
            del self.buffer[:FRAME.size + length]
        return out


_CHANNEL, _PIPE = object(), object()  # what an epoll event is for, besides connections


class _RouteKey:
    __slots__ = ("route_key",)

    def __init__(self, route_key: str) -> None:
        self.route_key = route_key


class _Conn:
    __slots__ = ("sock", "id", "route", "generation", "buf", "sent", "method", "target",
                 "version")

    def __init__(self, sock: socket.socket, ident: int, route: dict[str, Any], generation: int,
                 prefix: bytes) -> None:
        self.sock = sock
        self.id = ident
        self.route = route
        self.generation = generation
        self.buf = bytearray(prefix)
        self.sent = 0
        self.method = str(route["method"])
        self.target = str(route["target"])
        self.version = str(route["version"]).encode()


_REASONS = {s.value: s.phrase for s in HTTPStatus}
_SERVER = b"server: mlops-local\r\n"


class Date:
    """The ``date`` header line, formatted once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.line = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.line = f"date: {formatdate(now, usegmt=True)}\r\n".encode()
        return self.line


def render(status: int, head: bytes, body: bytes, date: bytes) -> bytes:
    """An HTTP/1.1 response; ``head`` holds header lines, each ending with CRLF."""
    return b"".join((f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n".encode(), _SERVER,
                     date, head, b"content-length: ", str(len(body)).encode(), b"\r\n\r\n",
                     body))


Invoke = Callable[[dict[str, Any], str, str, float, bool], tuple[Any, dict[str, Any] | None]]


class DirectServer:
    """The worker's event loop: the runner's pipe, the hub's channel and the connections."""

    def __init__(self, channel: socket.socket, shm: mmap.mmap, apigw: Any, invoke: Invoke,
                 flush_logs: Callable[[], None], memory_mb: int | None,
                 timeout_ms: float, spin_us: float = 0.0) -> None:
        self.channel = channel
        self.shm = shm
        self.apigw = apigw
        self.invoke = invoke
        self.flush_logs = flush_logs
        # Request ids: UUID-shaped, a random prefix per worker and a counter (no syscall).
        prefix = uuid.uuid4().hex
        self._ids = f"{prefix[:8]}-{prefix[8:12]}-{prefix[12:16]}-{prefix[16:20]}-"
        self._next_id = int(prefix[20:], 16) & 0xFFFFFFFF  # 12 hex digits never wrap here
        self.memory_mb = memory_mb
        self.timeout_ms = timeout_ms
        self.frames = Frames()
        self._epoll = select.epoll()
        self._fds: dict[int, Any] = {}  # fd -> _CHANNEL, _PIPE or a _Conn
        self._watch(channel.fileno(), _CHANNEL)
        self.conns: dict[int, _Conn] = {}
        self.date = Date()
        self.exit_after = False  # memory over the limit: answer, then end this environment
        self.pending = 0  # reports on the page, not yet on the channel
        self.pending_bytes = 0
        self.seq = 0
        # Adaptive busy-poll: after an answer, while requests come back to back, look for the
        # next one for up to ``spin_s`` before sleeping in epoll (a sleeping worker is woken
        # on a cold CPU: tens of µs per request). Off with MLOPS_LOCAL_SPIN_US=0.
        self.spin_s = spin_us / 1e6
        self._last_request = 0.0

    def wait(self, pipe_fd: int) -> bool:
        """Serve the channel and connections until the runner's pipe is readable (True) or
        this environment must end (False)."""
        if pipe_fd not in self._fds:
            self._watch(pipe_fd, _PIPE)
        poll = self._epoll.poll
        while not self.exit_after:
            ready = self._spin() if self.spin_s else []
            if not ready:
                self.flush()  # nothing to do for a while: the hub gets the reports now
                ready = poll()
            pipe_ready = False
            for fd, _ in ready:
                target = self._fds.get(fd)
                if target is None:
                    continue  # unregistered by an earlier event of this round
                if target is _CHANNEL:
                    if not self._channel():
                        return False
                elif target is _PIPE:
                    pipe_ready = True
                else:
                    self._readable(target)
            if pipe_ready:
                return True
        self.flush()
        return False

    def _watch(self, fd: int, target: Any) -> None:
        self._fds[fd] = target
        self._epoll.register(fd, select.EPOLLIN)

    def _unwatch(self, fd: int) -> None:
        self._fds.pop(fd, None)
        self._epoll.unregister(fd)

    def _spin(self) -> list[tuple[int, int]]:
        poll = self._epoll.poll
        ready = poll(0)
        if ready:
            return ready
        now = time.perf_counter()
        if now - self._last_request > 4 * self.spin_s:
            return []  # not a stream of requests: sleep
        until = now + self.spin_s
        while True:
            os.sched_yield()  # whoever else is runnable on this CPU goes first
            ready = poll(0)
            if ready or time.perf_counter() > until:
                return ready

    def request_id(self) -> str:
        self._next_id += 1
        return f"{self._ids}{self._next_id:012x}"

    def flush(self) -> None:
        """Send the reports waiting on the page (and write the log lines waiting)."""
        self.flush_logs()
        if self.pending_bytes:
            self.channel.sendall(self.shm[PENDING_AT:PENDING_AT + self.pending_bytes])
        PENDING_LEN.pack_into(self.shm, 76, 0)
        self.pending = self.pending_bytes = 0

    def _report(self, message: tuple[Any, ...]) -> None:
        data = frame(message)
        end = self.pending_bytes + len(data)
        if end > PENDING_MAX:
            self.flush()
            self._send(message)  # too large for the page: sent before the answer
            return
        self.shm[PENDING_AT + self.pending_bytes:PENDING_AT + end] = data
        PENDING_LEN.pack_into(self.shm, 76, end)
        self.pending_bytes = end
        self.pending += 1

    # -- the hub's channel ----------------------------------------------------------------
    def _channel(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.channel, 1 << 16, 64)
        except OSError:
            return False
        if not data:
            return False  # the daemon is gone
        for message in self.frames.feed(data, fds):
            if message[0] == "conn":
                _, ident, route, generation, prefix = message
                fd = self.frames.fds.pop(0)
                conn = _Conn(socket.socket(fileno=fd), ident, route, generation, prefix)
                self.conns[ident] = conn
                self._watch(fd, conn)
                if conn.buf:
                    self._serve(conn)
            elif message[0] == "sync":
                self.flush()
                self._send(("synced", message[1]))
        return True

    def _send(self, message: Any) -> None:
        self.channel.sendall(frame(message))

    def _drop(self, conn: _Conn, message: Any) -> None:
        self.flush()  # the hub learns of a connection's requests before it leaves
        self._unwatch(conn.sock.fileno())
        del self.conns[conn.id]
        conn.sock.close()  # the hub holds the connection too: it stays open
        self._send(message)

    # -- connections ----------------------------------------------------------------------
    def _readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            self._drop(conn, ("closed", conn.id))
            return
        conn.buf += data
        self._serve(conn)

    def _serve(self, conn: _Conn) -> None:
        """Answer every complete request in the buffer; hand the connection back if one is
        not ours to answer."""
        while conn.id in self.conns and conn.buf and not self.exit_after:
            buf = conn.buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._drop(conn, ("back", conn.id, bytes(buf)))
                return
            head = bytes(buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            headers: list[tuple[str, str]] = []
            length = 0
            close = False
            ours = (len(parts) == 3 and parts[2] == "HTTP/1.1" and parts[0] == conn.method
                    and parts[1] == conn.target
                    and GENERATION.unpack_from(self.shm, 32)[0] == conn.generation)
            for line in lines[1:]:
                if not ours:
                    break
                name, sep, value = line.partition(":")
                value = value.strip()
                lower = name.lower()
                if not sep or lower != name.strip().lower():
                    ours = False  # malformed, or whitespace before the colon
                elif lower == "content-length":
                    ours = value.isdigit() and int(value) <= MAX_BODY and not length
                    length = int(value) if ours else 0
                elif lower in ("transfer-encoding", "expect", "upgrade"):
                    ours = False
                elif lower == "connection":
                    close = value.lower() == "close"
                headers.append((name, value))
            if not ours:
                self._drop(conn, ("back", conn.id, bytes(buf)))
                return
            total = end + 4 + length
            if len(buf) < total:
                return  # the body is still on its way
            raw = bytes(buf[:total])
            del buf[:total]
            self._request(conn, headers, raw[end + 4:], raw)
            if close:
                self._drop(conn, ("closed", conn.id))

    def _request(self, conn: _Conn, headers: list[tuple[str, str]], body: bytes,
                 raw: bytes) -> None:
        t0 = self._last_request = time.perf_counter()
        shm = self.shm
        request_id = self.request_id()
        CONN.pack_into(shm, 4, conn.id)
        STARTED.pack_into(shm, 8, time.monotonic())
        SENT_BEFORE.pack_into(shm, 16, conn.sent)
        if len(raw) <= SHM_SIZE - REQUEST_AT:
            shm[REQUEST_AT:REQUEST_AT + len(raw)] = raw
            REQUEST_LEN.pack_into(shm, 24, len(raw))
        else:
            REQUEST_LEN.pack_into(shm, 24, 0)
        shm[REQUEST_ID:REQUEST_ID + 36] = request_id.encode()
        STATE.pack_into(shm, 0, RUNNING)
        route = conn.route
        event = self.apigw.build_event(
            route=_RouteKey(route["route_key"]), api_id=route["api_id"], stage=route["stage"],
            method=conn.method, raw_path=route["raw_path"], raw_query=route["raw_query"],
            headers=headers, body=body, path_params=route["path_params"],
            source_ip=route["source_ip"], request_id=request_id, protocol="HTTP/1.1")
        payload, error = self.invoke(event, self.request_id(), route["invoked_arn"],
                                     self.timeout_ms, False)
        status, kind, capture, head, data = self._response(payload, error)
        rid = request_id.encode()
        response = render(status, b"".join((
            head, b"x-amzn-requestid: ", rid, b"\r\napigw-requestid: ", rid,
            b"\r\nx-mlops-executed-version: ", conn.version, b"\r\nx-mlops-cold-start: false\r\n",
        )), data, self.date())
        seconds = time.perf_counter() - t0
        # Reported before it is written: a worker killed after this point has its capture
        # committed, and the hub can tell (the socket's byte count) whether the client got it.
        self.seq += 1
        self._report(("done", *Report(conn.id, request_id, status, seconds, kind, capture,
                                      response, conn.sent, self.seq)))
        STATE.pack_into(shm, 0, ANSWERED)
        try:
            conn.sock.sendall(response)
        except OSError:
            STATE.pack_into(shm, 0, IDLE)
            self._drop(conn, ("closed", conn.id))
            return
        conn.sent += len(response)
        STATE.pack_into(shm, 0, IDLE)
        if self.pending >= FLUSH_EVERY:
            self.flush()  # after the answer: the client is not kept waiting for it

    def _response(self, payload: Any, error: dict[str, Any] | None,
                  ) -> tuple[int, str | None, Any, bytes, bytes]:
        """(status, error kind, capture record, header lines, body) — the gateway's rules."""
        capture = None
        if error is None and self.memory_mb is not None and self.seq % RSS_EVERY == 0:
            rss = self._rss_mb()
            if rss > self.memory_mb:
                self.exit_after = True
                error = {"errorType": "Runtime.OutOfMemory",
                         "errorMessage": f"worker used {rss:.0f} MB of memory, more than its "
                                         f"{self.memory_mb} MB"}
        if error is not None:
            body = b'{"message": "Internal Server Error"}'
            return 502, "function", None, b"content-type: application/json\r\n", body
        if isinstance(payload, dict) and CAPTURE_KEY in payload:
            payload = dict(payload)
            capture = payload.pop(CAPTURE_KEY)
        try:
            translated = self.apigw.translate_result(payload)
        except ValueError:
            body = b'{"message": "Internal Server Error"}'
            return 500, "server", None, b"content-type: application/json\r\n", body
        status = translated.status
        kind: str | None = "server" if status >= 500 else "client" if status >= 400 else None
        head = "".join(f"{n}: {v}\r\n" for n, v in translated.headers).encode("latin-1")
        return status, kind, capture, head, translated.body

    def _rss_mb(self) -> float:
        """Peak resident memory so far (what Lambda reports as Max Memory Used), in MB."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def open_direct(env: dict[str, str], apigw: Any, invoke: Invoke, flush_logs: Callable[[], None],
                ) -> DirectServer | None:
    """The direct server, if the runner gave this worker a channel and a shared page."""
    channel_fd, shm_fd = env.get("MLOPS_DIRECT_CHANNEL_FD"), env.get("MLOPS_DIRECT_SHM_FD")
    if not channel_fd or not shm_fd:
        return None
    channel = socket.socket(fileno=int(channel_fd))
    shm = mmap.mmap(int(shm_fd), SHM_SIZE)
    os.close(int(shm_fd))
    memory = env.get("MLOPS_DIRECT_MEMORY_MB")
    timeout_ms = float(env.get("MLOPS_DIRECT_TIMEOUT_MS") or 3000)
    spin_us = float(env.get("MLOPS_DIRECT_SPIN_US") or 0)
    return DirectServer(channel, shm, apigw, invoke, flush_logs,
                        int(memory) if memory else None, timeout_ms, spin_us)
