"""The direct path, daemon side: connections handed to warm workers, and what they report.

The gateway answers a connection's first request the ordinary way (route → runner → worker
pipe). If the route is a plain one — no IAM check, an alias without weights, no shadow — it
hands the connection to a warm worker of the version that answered (``DirectHub.adopt``);
that worker reads and answers the next requests on it without crossing the daemon (see
``direct_worker.py``). The hub keeps the other end of every handed connection and, on one
thread, everything the gateway would have done:

- each ``done`` report: Prometheus metrics (same series as the gateway's) and the capture
  lines into the spool (``CaptureStore.add``), before the worker writes the response;
- ``back``: a request the worker will not answer → the gateway serves the connection again,
  starting with the bytes the worker had read;
- the timeout: a worker in a request longer than its function's timeout is killed and the
  client gets the gateway's 504;
- a worker that dies (killed, crashed, replaced by a deploy) loses no connection: the one in
  flight is replayed through the gateway from the raw request in the worker's shared page
  (if the worker had not answered), its answer re-sent (if it had reported but the socket's
  byte count says the client did not get it), and every other one is served by the gateway;
- the routing changing (``POST /_mlops/refresh``, or the once-a-second check of each handed
  route against the control plane) sends every connection back at its next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import selectors
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import direct_worker as dw
from .capture import CaptureStore

if TYPE_CHECKING:
    from .metrics import Metrics
    from .pool import Pool, Worker

log = logging.getLogger(__name__)

PAGES_DIR = "pages"  # under the capture spool: one page file per worker
CHECK_EVERY_S = 1.0
WATCH_EVERY_S = 0.05
_DATE = dw.Date()  # the date header of the answers the hub writes itself
_BYTES_ACKED = 120  # offset of tcpi_bytes_acked (u64) in struct tcp_info (Linux >= 4.1)

Resume = Callable[[socket.socket, Any, bytes], None]


@dataclass(frozen=True)
class Ticket:
    """What the gateway learnt from a connection's request that lets the next ones go direct."""

    pool: Pool
    route: dict[str, Any]  # the event fields the worker cannot read from the request
    still_valid: Callable[[], bool]


@dataclass(eq=False)
class _Conn:
    id: int
    sock: socket.socket
    addr: Any
    ticket: Ticket
    peer: _Peer
    base: int  # bytes the gateway had written on it before the handoff


@dataclass(eq=False)
class _Peer:
    worker: Worker
    pool: Pool
    region: str
    endpoint: str
    version: str
    frames: dw.Frames = field(default_factory=dw.Frames)
    conns: dict[int, _Conn] = field(default_factory=dict)
    last_done: dw.Report | None = None
    seq: int = 0  # the last report counted
    timed_out: bool = False
    send_lock: threading.Lock = field(default_factory=threading.Lock)


def recover_pages(pages: Path, capture: CaptureStore) -> int:
    """After a crash of the daemon: spool the capture records its workers had written to
    their pages but the hub had not counted; remove the pages. Returns the records."""
    recovered = 0
    for path in sorted(pages.glob("*.page")) if pages.is_dir() else []:
        region = path.name.split(".", 1)[0]
        try:
            with path.open("rb") as fh:
                head = fh.read(dw.PENDING_AT)
                if len(head) == dw.PENDING_AT:
                    counted = dw.HUB_SEQ.unpack_from(head, 80)[0]
                    length = dw.PENDING_LEN.unpack_from(head, 76)[0]
                    for report in dw.reports(fh.read(length)):
                        if report.seq > counted and isinstance(report.capture, dict):
                            capture.add(region, report.capture)
                            recovered += int(report.capture.get("count") or 0)
        except (OSError, ValueError, EOFError, IndexError, TypeError):
            log.exception("could not read the page %s", path.name)
        path.unlink(missing_ok=True)
    if recovered:
        log.info("recovered %d capture records from the pages of a crashed daemon's workers",
                 recovered)
    return recovered


def written(sock: socket.socket) -> int:
    """Bytes the application has written on a TCP socket so far (acked + still queued)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return -1
    if len(info) < _BYTES_ACKED + 8:
        return -1
    acked: int = struct.unpack_from("<Q", info, _BYTES_ACKED)[0]
    return acked + int(struct.unpack("<i", queued)[0])


class DirectHub:
    def __init__(self, capture: CaptureStore) -> None:
        self.capture = capture
        self.metrics: Metrics | None = None  # set by the gateway
        self.resume: Resume | None = None  # set by the gateway server
        self.generation = 1
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._peers: dict[Worker, _Peer] = {}
        self._selector = selectors.DefaultSelector()
        self._syncs: dict[int, threading.Event] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="direct-hub", daemon=True)
        self._thread.start()
        self.adopted = 0  # connections handed to workers, ever (tests, /metrics)
        self.replayed = 0  # in-flight requests of dead workers replayed through the gateway

    # -- workers --------------------------------------------------------------------------
    def attach(self, worker: Worker, pool: Pool) -> None:
        """A worker is ready: listen to its channel."""
        if worker.channel is None or worker.shm is None:
            return
        env = pool.spec.env
        peer = _Peer(worker, pool, env.get("AWS_REGION", "us-east-1"),
                     env.get("MLOPS_ENDPOINT") or env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
                     env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"))
        dw.GENERATION.pack_into(worker.shm, 32, self.generation)
        with self._lock:
            self._peers[worker] = peer
        self._selector.register(worker.channel, selectors.EVENT_READ, peer)

    def adopt(self, ticket: Ticket, sock: socket.socket, addr: Any, prefix: bytes) -> bool:
        """Hand ``sock`` to a warm worker of ``ticket.pool``; False: the gateway keeps it."""
        worker = ticket.pool.direct_target()
        if worker is None:
            return False
        with self._lock:
            peer = self._peers.get(worker)
            if peer is None or worker.channel is None:
                worker.conns -= 1
                return False
            conn = _Conn(next(self._ids), sock, addr, ticket, peer, written(sock))
            peer.conns[conn.id] = conn
            generation = self.generation
        message = dw.frame(("conn", conn.id, ticket.route, generation, prefix))
        try:
            with peer.send_lock:
                socket.send_fds(worker.channel, [message], [sock.fileno()])
        except OSError:  # the worker is dying
            with self._lock:
                mine = peer.conns.pop(conn.id, None) is not None
            if not mine:
                return True  # the hub already took it back with the worker's others
            worker.conns -= 1
            return False
        self.adopted += 1
        return True

    def sync(self, timeout_s: float = 2.0) -> None:
        """Wait until every worker's reports so far have been counted (capture, metrics)."""
        waits = []
        with self._lock:
            peers = list(self._peers.values())
        for peer in peers:
            if peer.worker.channel is None:
                continue
            token = next(self._ids)
            event = self._syncs[token] = threading.Event()
            try:
                with peer.send_lock:
                    peer.worker.channel.sendall(dw.frame(("sync", token)))
            except OSError:
                self._syncs.pop(token, None)
                continue
            waits.append(event)
        deadline = time.monotonic() + timeout_s
        for event in waits:
            event.wait(max(0.0, deadline - time.monotonic()))

    def revoke(self) -> None:
        """Every handed connection goes back to the gateway at its next request."""
        with self._lock:
            self.generation += 1
            for peer in self._peers.values():
                if peer.worker.shm is not None:
                    dw.GENERATION.pack_into(peer.worker.shm, 32, self.generation)

    def handed(self) -> int:
        with self._lock:
            return sum(len(p.conns) for p in self._peers.values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    # -- the hub's thread -----------------------------------------------------------------
    def _loop(self) -> None:
        checked = time.monotonic()
        while not self._stop.is_set():
            try:
                for key, _ in self._selector.select(WATCH_EVERY_S):
                    self._read(key.data)
                self._watch()
                if time.monotonic() - checked >= CHECK_EVERY_S:
                    checked = time.monotonic()
                    self._check()
            except Exception:
                log.exception("direct hub")

    def _read(self, peer: _Peer) -> None:
        channel = peer.worker.channel
        try:
            data = channel.recv(1 << 16) if channel is not None else b""
        except OSError:
            data = b""
        if not data:
            self._dead(peer)
            return
        self._messages(peer, peer.frames.feed(data, []))

    def _messages(self, peer: _Peer, messages: list[Any]) -> None:
        for message in messages:
            kind = message[0]
            if kind == "done":
                self._done(peer, dw.Report(*message[1:]))
            elif kind == "synced":
                event = self._syncs.pop(message[1], None)
                if event is not None:
                    event.set()
            elif kind == "back":
                self._back(peer, int(message[1]), bytes(message[2]))
            elif kind == "closed":
                conn = self._pop(peer, int(message[1]))
                if conn is not None:
                    conn.sock.close()

    def _done(self, peer: _Peer, report: dw.Report) -> None:
        if report.seq <= peer.seq:
            return  # read from the page after a death, and then from the channel
        peer.seq = report.seq
        peer.last_done = report
        # The worker's own labels, not the connection's: a report read from the page of a
        # dead worker counts even though its connections are gone.
        if self.metrics is not None:
            self.metrics.request(peer.endpoint, peer.version, int(report.status),
                                 float(report.seconds), False, report.kind)
        if isinstance(report.capture, dict):
            self.capture.add(peer.region, report.capture)
        shm = peer.worker.shm
        if shm is not None:  # counted: a daemon restarted from a crash will not count it again
            dw.HUB_SEQ.pack_into(shm, 80, report.seq)

    def _pop(self, peer: _Peer, cid: int) -> _Conn | None:
        with self._lock:
            conn = peer.conns.pop(cid, None)
        if conn is not None:
            peer.worker.conns -= 1
        return conn

    def _back(self, peer: _Peer, cid: int, prefix: bytes) -> None:
        conn = self._pop(peer, cid)
        if conn is not None:
            self._resume(conn, prefix)

    def _resume(self, conn: _Conn, prefix: bytes) -> None:
        if self.resume is None:
            conn.sock.close()
            return
        self.resume(conn.sock, conn.addr, prefix)

    def _watch(self) -> None:
        """Kill workers whose direct request outlived the function's timeout."""
        now = time.monotonic()
        with self._lock:
            peers = list(self._peers.values())
        for peer in peers:
            shm = peer.worker.shm
            if shm is None or peer.timed_out:
                continue
            state = dw.STATE.unpack_from(shm, 0)[0]
            started = dw.STARTED.unpack_from(shm, 8)[0]
            if state != dw.RUNNING or now - started <= peer.pool.spec.timeout_s:
                continue
            if dw.STATE.unpack_from(shm, 0)[0] == dw.RUNNING and dw.STARTED.unpack_from(
                    shm, 8)[0] == started:
                peer.timed_out = True
                log.info("direct request on worker %d timed out", peer.worker.proc.pid)
                with contextlib.suppress(OSError):
                    peer.worker.proc.kill()

    def _check(self) -> None:
        with self._lock:
            tickets = {id(c.ticket): c.ticket for p in self._peers.values()
                       for c in p.conns.values()}
        for ticket in tickets.values():
            try:
                valid = ticket.still_valid()
            except Exception:
                log.exception("checking a direct route")
                valid = False
            if not valid:
                self.revoke()
                return

    def _dead(self, peer: _Peer) -> None:
        worker = peer.worker
        with contextlib.suppress(KeyError, ValueError):
            if worker.channel is not None:
                self._selector.unregister(worker.channel)
        shm = worker.shm
        if shm is not None:  # reports written before the answers but never sent
            for report in dw.reports(dw.pending(shm)):
                self._done(peer, report)
        with self._lock:
            self._peers.pop(worker, None)
            conns = list(peer.conns.values())
            peer.conns.clear()
        state, cid, _, _, raw, request_id = dw.read_state(shm) if shm is not None else (
            dw.IDLE, 0, 0.0, 0, b"", "")
        for conn in conns:
            if state != dw.IDLE and conn.id == cid:
                self._in_flight(peer, conn, raw, request_id)
            else:
                self._resume(conn, b"")
        peer.pool.forget(worker)

    def _in_flight(self, peer: _Peer, conn: _Conn, raw: bytes, request_id: str) -> None:
        """Finish the request a dead worker was answering on ``conn``."""
        done = peer.last_done
        if done is not None and done.request_id == request_id:
            response, sent_before = bytes(done.response), int(done.sent_before)
            got = written(conn.sock) - conn.base
            if got == sent_before:  # reported, never written: the client still waits
                with contextlib.suppress(OSError):
                    conn.sock.sendall(response)
            elif got != sent_before + len(response):
                conn.sock.close()  # cut mid-response: nothing sensible can follow
                return
            self._resume(conn, b"")
            return
        if peer.timed_out:
            timeout = peer.pool.spec.timeout_s
            if self.metrics is not None:
                self.metrics.request(peer.endpoint, peer.version, 504, timeout, False,
                                     "timeout")
            self._answer(conn, 504, "Gateway Timeout", request_id)
            self._resume(conn, b"")
        elif raw:
            self.replayed += 1
            self._resume(conn, raw)  # served again through the gateway, on a fresh worker
        else:
            self._answer(conn, 502, "Internal Server Error", request_id)
            self._resume(conn, b"")

    def _answer(self, conn: _Conn, status: int, message: str, request_id: str) -> None:
        body = f'{{"message": "{message}"}}'.encode()
        rid = request_id.encode()
        head = b"".join((b"content-type: application/json\r\nx-amzn-requestid: ", rid,
                         b"\r\napigw-requestid: ", rid, b"\r\nx-mlops-executed-version: ",
                         conn.peer.version.encode(), b"\r\nx-mlops-cold-start: false\r\n"))
        with contextlib.suppress(OSError):
            conn.sock.sendall(dw.render(status, head, body, _DATE()))
