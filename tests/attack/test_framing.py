"""Request framing and methods, attacked over raw sockets: every body is bounded and framed
unambiguously before any byte of it reaches a function; methods API Gateway does not route are
405; pipelined requests are answered in order."""

from __future__ import annotations

import json
import threading

import pytest

from .conftest import Target
from .wire import Wire, exchange, request

pytestmark = pytest.mark.timeout(300)

MAX_BODY = 6 * 1024 * 1024
TOO_LARGE = {"message": "Request Entity Too Large"}

# Each is a header tail + body that no two parsers may read differently.
BAD_FRAMINGS = {
    "negative length": b"Content-Length: -1\r\n\r\n{}",
    "non-numeric length": b"Content-Length: abc\r\n\r\n{}",
    "superscript-two length": "Content-Length: \u00b2\r\n\r\n{}".encode(),
    "duplicate length": b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    "conflicting lengths": b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{} ",
    "listed lengths": b"Content-Length: 2, 3\r\n\r\n{} ",
    "negative chunk size": b"Transfer-Encoding: chunked\r\n\r\n-1\r\n{}\r\n0\r\n\r\n",
    "length and chunked": (b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"2\r\n{}\r\n0\r\n\r\n"),
}


def _head(target: Target, endpoint: str) -> bytes:
    return (f"POST {target.paths[endpoint]} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\n").encode()


@pytest.mark.parametrize("endpoint", ["predict", "keyed"])
@pytest.mark.parametrize("framing", list(BAD_FRAMINGS))
def test_ambiguous_framing_is_400_before_the_function(target: Target, endpoint: str,
                                                      framing: str) -> None:
    before = target.invocations()
    answer, closed = exchange(target.port, _head(target, endpoint) + BAD_FRAMINGS[framing])
    assert answer.status == 400, answer
    assert answer.json() == {"message": "Bad Request"}
    assert closed  # nothing after an unframed body can be trusted
    assert target.invocations() == before


def test_bad_chunk_size_after_the_header_is_400(target: Target) -> None:
    before = target.invocations()
    with Wire(target.port) as wire:
        wire.send(_head(target, "predict") + b"Transfer-Encoding: chunked\r\n\r\n")
        wire.send(b"2\r\n{}\r\n")
        wire.send(b"-1\r\n")  # the header was accepted; the body's framing breaks later
        answer = wire.answer()
        assert answer.status == 400 and answer.json() == {"message": "Bad Request"}
        assert wire.closed_by_peer()
    assert target.invocations() == before


def test_superscript_length_on_a_kept_alive_connection(target: Target) -> None:
    """Once killed a worker and left the client hanging: now a 400 and a closed connection."""
    path = target.paths["predict"]
    with Wire(target.port) as wire:
        wire.send(request("POST", path, body=target.sample))
        assert wire.answer().status == 200
        workers = set(target.workers())
        wire.send(_head(target, "predict") + "Content-Length: \u00b2\r\n\r\n{}".encode())
        answer = wire.answer()
        assert answer.status == 400
        assert wire.closed_by_peer()
    assert workers <= set(target.workers())  # no environment died
    answer, _ = exchange(target.port, request("POST", path, {"Connection": "close"},
                                              target.sample))
    assert answer.status == 200


@pytest.mark.parametrize("endpoint", ["predict", "keyed", "signed"])
@pytest.mark.parametrize("declared", [MAX_BODY + 1, 300 * 1024 * 1024])
def test_declared_oversized_body_is_413_unread(target: Target, endpoint: str,
                                               declared: int) -> None:
    before = target.invocations()
    with Wire(target.port) as wire:
        # the header and a little of the body; the rest is never sent
        wire.send(_head(target, endpoint) + f"Content-Length: {declared}\r\n\r\n".encode()
                  + b"[" * 65536)
        answer = wire.answer()
        assert answer.status == 413 and answer.json() == TOO_LARGE
        assert answer.headers["connection"] == "close"
        assert wire.closed_by_peer()
    assert target.invocations() == before


def test_a_client_that_sends_a_whole_oversized_body_reads_the_413(target: Target) -> None:
    """Most clients write the whole body before reading: they get the answer, not a reset."""
    body = b" " * (MAX_BODY + 1)
    with Wire(target.port) as wire:
        wire.send(request("POST", target.paths["predict"], body=body))
        answer = wire.answer()
        assert answer.status == 413 and answer.json() == TOO_LARGE
        assert wire.closed_by_peer()


def test_expect_continue_oversized_is_413_without_100(target: Target) -> None:
    with Wire(target.port) as wire:
        wire.send(_head(target, "predict") + f"Content-Length: {MAX_BODY + 1}\r\n"
                  "Expect: 100-continue\r\n\r\n".encode())
        answer = wire.answer()
        assert answer.status == 413 and answer.json() == TOO_LARGE


def test_expect_continue_within_the_limit_is_answered(target: Target) -> None:
    body = target.sample
    with Wire(target.port) as wire:
        wire.send(_head(target, "predict") + f"Content-Length: {len(body)}\r\n"
                  "Expect: 100-continue\r\n\r\n".encode())
        assert wire.answer().status == 100
        wire.send(body)
        answer = wire.answer()
        assert answer.status == 200 and len(answer.json()["predictions"]) == 2


def test_chunked_body_past_the_limit_is_413(target: Target) -> None:
    before = target.invocations()
    chunk = b"%x\r\n" % (1 << 20) + b" " * (1 << 20) + b"\r\n"
    with Wire(target.port) as wire:
        wire.send(_head(target, "keyed") + b"Transfer-Encoding: chunked\r\n\r\n")

        def send() -> None:  # up to 64 MB; the gateway stops reading past 6 MB
            try:
                for _ in range(64):
                    wire.sock.sendall(chunk)
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = wire.answer()
        assert answer.status == 413 and answer.json() == TOO_LARGE
        sender.join(timeout=30)
        assert not sender.is_alive()  # the connection closed under it
    assert target.invocations() == before


def test_iam_is_checked_before_the_body_is_read(target: Target) -> None:
    """An unsigned request to an IAM route is refused while its body has not been sent."""
    before = target.invocations()
    with Wire(target.port) as wire:
        wire.send(_head(target, "signed") + b"Content-Length: 1000000\r\n\r\n")
        answer = wire.answer()
    assert answer.status == 403 and answer.json() == {"message": "Forbidden"}
    with Wire(target.port) as wire:  # unrouted: 404, also before the body
        wire.send(_head(target, "predict").replace(b"/diagnosis/predict", b"/nowhere")
                  + b"Content-Length: 1000000\r\n\r\n")
        assert wire.answer().status == 404
    assert target.invocations() == before


def test_a_body_that_stalls_is_408(target: Target) -> None:
    with Wire(target.port) as wire:
        wire.send(_head(target, "predict") + b"Content-Length: 100\r\n\r\n{\"instan")
        answer = wire.answer()  # the body timeout (3 s here) ends the wait
        assert answer.status == 408 and answer.json() == {"message": "Request Timeout"}
        assert wire.closed_by_peer()


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "FOO", "BREW"])
def test_unrouted_methods_are_405_with_allow(target: Target, method: str) -> None:
    before = target.invocations()
    target_path = "127.0.0.1:443" if method == "CONNECT" else target.paths["predict"]
    with Wire(target.port) as wire:
        wire.send(f"{method} {target_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        answer = wire.answer()
    assert answer.status == 405
    assert answer.json() == {"message": "Method Not Allowed"}
    assert answer.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
    assert target.invocations() == before


def test_pipelined_requests_of_any_size_are_answered_in_order(target: Target) -> None:
    row = json.loads(target.sample)["instances"][0]
    bodies = [json.dumps({"instances": [row] * n}).encode() for n in (1, 2, 3, 4)]
    bodies[1] += b" " * (1 << 20)  # 1 MB of JSON whitespace
    bodies[2] += b" " * 20000  # over the 8 KB that once split a hand-off
    path = target.paths["predict"]
    with Wire(target.port) as wire:
        wire.send(b"".join(request("POST", path, body=b) for b in bodies))
        answers = [wire.answer() for _ in bodies]
    assert [a.status for a in answers] == [200] * 4
    assert [len(a.json()["predictions"]) for a in answers] == [1, 2, 3, 4]
