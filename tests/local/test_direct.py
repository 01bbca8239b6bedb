"""The direct path: keep-alive connections handed to warm workers, against a real daemon.

The first request of a connection is answered through gateway → runner → worker pipe (its
``server`` header is the gateway's); the next ones by the worker itself (``mlops-local``).
Whatever the worker will not answer goes back to the gateway, on the same connection.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
import urllib.request
from typing import Any

import pytest

from .conftest import Deployed
from .support import Reply, request

DIRECT = "mlops-local"


def _conn(deployed: Deployed) -> http.client.HTTPConnection:
    port = int(deployed.aws.gateway_url.rsplit(":", 1)[1])
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def _metric(deployed: Deployed, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{deployed.aws.gateway_url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        named = line.startswith((name + "{", name + " "))
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _served_by(reply: Reply) -> str:
    return reply.headers["server"]


def _handed(deployed: Deployed, conn: http.client.HTTPConnection, path: str) -> list[Reply]:
    """Two requests on ``conn``: the gateway answers the first, a worker the second."""
    replies = [request(deployed.url(path), conn=conn) for _ in range(2)]
    assert [r.status for r in replies] == [200, 200]
    assert _served_by(replies[0]) != DIRECT
    assert _served_by(replies[1]) == DIRECT
    return replies


def test_next_requests_are_answered_by_the_worker_with_the_same_event(
        deployed: Deployed) -> None:
    before = _metric(deployed, "mlops_requests_total", endpoint="echo", version="1")
    conn = _conn(deployed)
    replies = [request(deployed.url("/items/42?x=1"), conn=conn,
                       headers={"X-Test": "abc", "Cookie": "c=1"}) for _ in range(6)]
    conn.close()
    assert [r.status for r in replies] == [200] * 6
    assert [_served_by(r) for r in replies[1:]] == [DIRECT] * 5
    first, direct = replies[0].json(), replies[3].json()
    assert first["pid"] == direct["pid"]  # the warm worker that answered the first request
    for key in ("routeKey", "rawPath", "rawQueryString", "queryStringParameters",
                "pathParameters", "cookies", "isBase64Encoded", "version"):
        assert direct["event"][key] == first["event"][key], key
    ctx, ctx0 = direct["event"]["requestContext"], first["event"]["requestContext"]
    assert {k: v for k, v in ctx.items() if k not in ("requestId", "time", "timeEpoch")} == {
        k: v for k, v in ctx0.items() if k not in ("requestId", "time", "timeEpoch")}
    assert direct["event"]["headers"]["x-test"] == "abc"
    assert ctx["requestId"] == replies[3].headers["x-amzn-requestid"]
    assert direct["context"]["invoked_function_arn"].endswith(":echo:stable")
    assert direct["context"]["aws_request_id"] != ctx["requestId"]
    for reply in replies[1:]:
        assert reply.headers["x-mlops-executed-version"] == "1"
        assert reply.headers["x-mlops-cold-start"] == "false"
        assert reply.headers["apigw-requestid"] == reply.headers["x-amzn-requestid"]
    # every request counted, the direct ones included (the scrape waits for the reports)
    after = _metric(deployed, "mlops_requests_total", endpoint="echo", version="1")
    assert after - before == 6
    assert _metric(deployed, "mlops_direct_adopted_total") >= 1


def test_requests_the_worker_does_not_serve_go_back_on_the_same_connection(
        deployed: Deployed) -> None:
    conn = _conn(deployed)
    _handed(deployed, conn, "/items/1")
    other = request(deployed.url("/items/2"), conn=conn)  # another target
    assert other.status == 200 and other.json()["event"]["pathParameters"] == {"id": "2"}
    assert _served_by(other) != DIRECT
    latest = request(deployed.url("/latest"), conn=conn)  # another route and version
    assert latest.status == 200 and latest.headers["x-mlops-executed-version"] == "$LATEST"
    missing = request(deployed.url("/nope"), conn=conn)
    assert missing.status == 404
    raised = request(deployed.url("/items/2?mode=raise"), conn=conn)
    assert raised.status == 502
    assert request(deployed.url("/items/2"), conn=conn).status == 200
    conn.close()


def test_head_requests_stay_with_the_gateway(deployed: Deployed) -> None:
    conn = _conn(deployed)
    heads = [request(deployed.url("/v2/x"), "HEAD", conn=conn) for _ in range(3)]
    assert [(r.status, r.body, _served_by(r) == DIRECT) for r in heads] == [
        (200, b"", False)] * 3  # ANY /v2/{proxy+}; a worker would also write a body
    assert request(deployed.url("/v2/x"), conn=conn).status == 200
    conn.close()


def _raw(deployed: Deployed) -> tuple[socket.socket, str]:
    port = int(deployed.aws.gateway_url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock, f"/{deployed.api_id}/items/5"


def _read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes, bytes]]:
    """(status, head, body) of ``count`` responses read from a raw socket."""
    buf = b""
    out = []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(buf) < length:
            buf += sock.recv(65536)
        out.append((int(head.split(b" ")[1]), head, buf[:length]))
        buf = buf[length:]
    return out


def test_pipelined_and_chunked_requests_on_a_handed_connection(deployed: Deployed) -> None:
    sock, path = _raw(deployed)
    get = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    sock.sendall(get)
    sock.sendall(get)
    _read_responses(sock, 2)
    sock.sendall(get * 3)  # three requests in one write
    replies = _read_responses(sock, 3)
    assert [r[0] for r in replies] == [200] * 3
    assert all(b"server: mlops-local" in r[1] for r in replies)
    chunked = (f"GET {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "3\r\nabc\r\n0\r\n\r\n").encode()
    sock.sendall(chunked + get)  # chunked: the gateway's, and the request after it too
    replies = _read_responses(sock, 2)
    assert [r[0] for r in replies] == [200, 200]
    assert b"server: mlops-local" not in replies[0][1]
    sock.sendall(get + b"GET " + path.encode() + b" HTTP/1.1\r\nConnection: close\r\n\r\n")
    replies = _read_responses(sock, 2)
    assert [r[0] for r in replies] == [200, 200]
    sock.settimeout(5)
    assert sock.recv(1) == b""  # closed after the "Connection: close" request
    sock.close()

    sock, path = _raw(deployed)  # a handed connection, then bytes that are not HTTP
    sock.sendall(get)
    sock.sendall(get)
    assert b"server: mlops-local" in _read_responses(sock, 2)[1][1]
    sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    status, head, body = _read_responses(sock, 1)[0]
    assert status == 400 and b"connection: close" in head.lower()  # the gateway's answer
    assert json.loads(body) == {"message": "Bad request version ('ALL')"}
    sock.close()


def test_refresh_sends_connections_back_to_the_gateway(deployed: Deployed) -> None:
    conn = _conn(deployed)
    _handed(deployed, conn, "/items/11")
    urllib.request.urlopen(urllib.request.Request(
        f"{deployed.aws.gateway_url}/_mlops/refresh", method="POST"), timeout=30).read()
    again = [request(deployed.url("/items/11"), conn=conn) for _ in range(2)]
    assert [_served_by(r) == DIRECT for r in again] == [False, True]
    conn.close()


def test_alias_moved_without_refresh_is_followed(deployed: Deployed) -> None:
    lam = deployed.conn.client("lambda")
    conn = _conn(deployed)
    _handed(deployed, conn, "/items/12")
    lam.update_alias(FunctionName="echo", Name="stable", FunctionVersion="2")
    try:
        deadline = time.monotonic() + 15
        version = "1"
        while version == "1" and time.monotonic() < deadline:
            reply = request(deployed.url("/items/12"), conn=conn)
            assert reply.status == 200
            version = reply.headers["x-mlops-executed-version"]
            time.sleep(0.05)
        assert version == "2"
    finally:
        lam.update_alias(FunctionName="echo", Name="stable", FunctionVersion="1")
        urllib.request.urlopen(urllib.request.Request(
            f"{deployed.aws.gateway_url}/_mlops/refresh", method="POST"), timeout=30).read()
    conn.close()


def test_direct_request_over_the_timeout_is_504_and_the_connection_lives(
        deployed: Deployed) -> None:
    conn = _conn(deployed)
    pid = _handed(deployed, conn, "/items/13")[1].json()["pid"]
    before = _metric(deployed, "mlops_errors_total", endpoint="echo", kind="timeout")
    started = time.monotonic()
    slow = request(deployed.url("/items/13"), conn=conn,
                   headers={"X-Echo-Mode": "sleep", "X-Echo-Sleep": "5"})
    assert slow.status == 504
    assert slow.json() == {"message": "Gateway Timeout"}
    assert 1.9 < time.monotonic() - started < 4.5  # Timeout=2
    after = request(deployed.url("/items/13"), conn=conn)
    assert after.status == 200 and after.json()["pid"] != pid
    assert _metric(deployed, "mlops_errors_total", endpoint="echo", kind="timeout") > before
    conn.close()


def test_worker_killed_mid_request_is_replayed(deployed: Deployed) -> None:
    conn = _conn(deployed)
    pid = _handed(deployed, conn, "/items/14")[1].json()["pid"]
    result: dict[str, Any] = {}

    def slow() -> None:
        result["reply"] = request(deployed.url("/items/14"), conn=conn,
                                  headers={"X-Echo-Mode": "sleep", "X-Echo-Sleep": "1.5"})

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.7)  # well inside the handler's sleep (the function's timeout is 2 s)
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=30)
    reply = result["reply"]
    assert reply.status == 200  # run again on a fresh worker, the client never knew
    assert reply.json()["pid"] != pid
    assert request(deployed.url("/items/14"), conn=conn).status == 200
    assert _metric(deployed, "mlops_direct_replayed_total") >= 1
    conn.close()


def test_idle_worker_killed_keeps_its_connections(deployed: Deployed) -> None:
    conn = _conn(deployed)
    pid = _handed(deployed, conn, "/items/15")[1].json()["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    replies = [request(deployed.url("/items/15"), conn=conn) for _ in range(3)]
    assert [r.status for r in replies] == [200] * 3
    assert replies[0].json()["pid"] != pid
    conn.close()


# -- a dead worker's request in flight, decided from its report and the socket's byte count --


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def _hub_with_dead_worker(tmp_path: Any, last_done: tuple[Any, ...] | None, timed_out: bool,
                          ) -> tuple[Any, Any, Any, list[bytes]]:
    from types import SimpleNamespace

    from framework.local.capture import CaptureStore
    from framework.local.direct import DirectHub, _Conn, _Peer, written

    client, server = _tcp_pair()
    hub = DirectHub(CaptureStore(tmp_path / "spool", lambda *a: None))
    resumed: list[bytes] = []
    hub.resume = lambda sock, addr, prefix: resumed.append(prefix)
    pool = SimpleNamespace(spec=SimpleNamespace(timeout_s=2.0))
    peer = _Peer(SimpleNamespace(), pool, "us-east-1", "ep", "3")  # type: ignore[arg-type]
    peer.last_done, peer.timed_out = last_done, timed_out
    server.sendall(b"gateway's answer to the first request")
    conn = _Conn(1, server, ("127.0.0.1", 1), None, peer, written(server))  # type: ignore[arg-type]
    client.recv(100)
    return hub, conn, client, resumed


def _report(request_id: str, response: bytes, sent_before: int) -> Any:
    from framework.local.direct_worker import Report

    return Report(1, request_id, 200, 0.001, None, None, response, sent_before, 7)


def test_reported_but_unwritten_answer_is_sent_by_the_hub(tmp_path: Any) -> None:
    hub, conn, client, resumed = _hub_with_dead_worker(
        tmp_path, _report("r1", b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 0), False)
    hub._in_flight(conn.peer, conn, b"GET / HTTP/1.1\r\n\r\n", "r1")
    client.settimeout(5)
    assert client.recv(100) == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    assert resumed == [b""]  # the gateway serves what comes next
    hub.close()


def test_written_answer_is_not_sent_twice(tmp_path: Any) -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    hub, conn, client, resumed = _hub_with_dead_worker(tmp_path, _report("r1", answer, 0), False)
    conn.sock.sendall(answer)  # the worker wrote it, then died
    client.settimeout(5)
    assert client.recv(100) == answer
    hub._in_flight(conn.peer, conn, b"GET / HTTP/1.1\r\n\r\n", "r1")
    client.settimeout(0.3)
    with pytest.raises(TimeoutError):
        client.recv(100)
    assert resumed == [b""]
    hub.close()


def test_unanswered_request_is_replayed_or_timed_out(tmp_path: Any) -> None:
    raw = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
    hub, conn, _, resumed = _hub_with_dead_worker(tmp_path, _report("older", b"x", 0), False)
    hub._in_flight(conn.peer, conn, raw, "r2")
    assert resumed == [raw] and hub.replayed == 1
    hub.close()
    hub, conn, client, resumed = _hub_with_dead_worker(tmp_path, None, True)
    hub._in_flight(conn.peer, conn, raw, "r3")
    client.settimeout(5)
    answer = client.recv(1000)
    assert answer.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert b"x-amzn-requestid: r3" in answer and answer.endswith(b'{"message": "Gateway Timeout"}')
    assert resumed == [b""]
    hub.close()


def test_pages_left_by_a_crashed_daemon_are_recovered_once(tmp_path: Any) -> None:
    import gzip
    import json

    from framework.local import direct_worker as dw
    from framework.local.capture import CaptureStore
    from framework.local.direct import recover_pages

    def report(seq: int) -> tuple[Any, ...]:  # as a worker writes it to its page
        line = json.dumps({"request_id": f"r{seq}", "row": 0}) + "\n"
        capture = {"bucket": "b", "endpoint": "ep", "day": "2026-11-27", "lines": line,
                   "count": 1}
        return ("done", *dw.Report(1, f"r{seq}", 200, 0.001, None, capture, b"answer", 0, seq))

    pages = tmp_path / "pages"
    pages.mkdir()
    data = b"".join(dw.frame(report(seq)) for seq in (1, 2, 3))
    page = bytearray(dw.PENDING_AT) + data
    dw.PENDING_LEN.pack_into(page, 76, len(data))
    dw.HUB_SEQ.pack_into(page, 80, 1)  # the hub had counted the first one
    (pages / "eu-west-1.abc.page").write_bytes(bytes(page))
    uploads: list[tuple[str, bytes]] = []
    store = CaptureStore(tmp_path / "spool", lambda region, b, k, d: uploads.append((region, d)))
    assert recover_pages(pages, store) == 2
    assert not list(pages.iterdir())
    assert store.flush() == 2
    rows = [json.loads(x) for _, d in uploads for x in gzip.decompress(d).splitlines()]
    assert [r["request_id"] for r in rows] == ["r2", "r3"]
    assert {region for region, _ in uploads} == {"eu-west-1"}
