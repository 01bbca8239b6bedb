"""Connections held by slow or idle clients: closed by the header and idle timeouts, bounded in
number, and never a thread or an execution environment each."""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import LIMITS, Target, proc_status
from .wire import Wire, exchange, request

pytestmark = pytest.mark.timeout(300)

SLOW = 5000
MAX_CONNECTIONS = int(LIMITS["MLOPS_LOCAL_MAX_CONNECTIONS"])
CONCURRENCY = int(LIMITS["MLOPS_LOCAL_CONCURRENCY"])
WAIT_S = 60.0  # a guard: the timeouts under test are 3 to 5 s


def _partial_header(target: Target) -> bytes:
    return (f"POST {target.paths['predict']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "X-Slow: ").encode()


def test_a_stalled_header_is_closed_unanswered(target: Target) -> None:
    wires = [Wire(target.port, timeout=WAIT_S) for _ in range(20)]
    try:
        for wire in wires:
            wire.send(_partial_header(target))
        assert all(wire.closed_by_peer() for wire in wires)  # by the header timeout, no answer
    finally:
        for wire in wires:
            wire.close()


def test_a_trickled_header_is_closed(target: Target) -> None:
    """A header sent one byte at a time never completes: the header timeout counts from its
    first byte, not from the last."""
    header = _partial_header(target) + b"x" * 1000
    with Wire(target.port) as wire:
        deadline = time.monotonic() + WAIT_S
        try:
            for byte in header:
                if time.monotonic() > deadline:
                    break
                wire.send(bytes([byte]))
                time.sleep(0.25)
        except OSError:  # the server closed the connection under the sender
            pass
        assert wire.closed_by_peer()


def test_an_idle_kept_alive_connection_is_closed(target: Target) -> None:
    with Wire(target.port, timeout=WAIT_S) as wire:
        wire.send(request("POST", target.paths["predict"], body=target.sample))
        assert wire.answer().status == 200
        assert wire.closed_by_peer()  # the idle timeout


def _raise_own_descriptor_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"{needed} descriptors are needed and the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _predict(target: Target) -> int:
    answer, _ = exchange(target.port, request("POST", target.paths["predict"],
                                              {"Connection": "close"}, target.sample))
    return answer.status


def test_5000_slow_connections(target: Target) -> None:
    """Slowloris: 5,000 connections that send part of a header and stall. The daemon keeps
    answering, holds at most its connection bound, spends no thread and no execution environment
    per connection, and closes every stalled one without an answer."""
    _raise_own_descriptor_limit(SLOW + 500)
    assert _predict(target) == 200  # warm: the environment is started before measuring
    pid = target.pid
    before = proc_status(pid)
    head = _partial_header(target)
    socks: list[socket.socket] = []
    try:
        for _ in range(SLOW):
            sock = socket.create_connection(("127.0.0.1", target.port), timeout=WAIT_S)
            socks.append(sock)
            with contextlib.suppress(OSError):  # already closed to make room: the bound
                sock.sendall(head)
        during = proc_status(pid)
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: _predict(target), range(16)))
        after = proc_status(pid)
        assert statuses == [200] * 16
        assert len(target.workers("predict")) <= CONCURRENCY
        for seen in (during, after):
            assert seen["fds"] <= before["fds"] + MAX_CONNECTIONS + 32, (before, seen)
            assert seen["threads"] <= before["threads"] + 16, (before, seen)
            assert seen["rss_kb"] - before["rss_kb"] < 64 * 1024, (before, seen)
        unanswered, answered = _wait_closed(socks)
        assert answered == 0
        assert unanswered == SLOW
    finally:
        for sock in socks:
            sock.close()
    assert _predict(target) == 200


def _wait_closed(socks: list[socket.socket]) -> tuple[int, int]:
    """(closed without a byte, answered with some) once every socket is closed by the peer."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    closed = answered = 0
    deadline = time.monotonic() + WAIT_S
    try:
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1.0):
                peer = key.fileobj
                assert isinstance(peer, socket.socket)
                try:
                    data = peer.recv(4096)
                except ConnectionResetError:
                    data = b""
                selector.unregister(peer)
                if data:
                    answered += 1
                else:
                    closed += 1
    finally:
        selector.close()
    return closed, answered
