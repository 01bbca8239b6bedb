"""Raw HTTP/1.1 over a loopback socket: what a hostile client sends, byte for byte, and the
answers as they come back (pipelined ones in order)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

TIMEOUT_S = 20.0  # a guard against a hang, never a measure


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Wire:
    """One client connection."""

    def __init__(self, port: int, timeout: float = TIMEOUT_S) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        self._buffer += chunk
        return bool(chunk)

    def answer(self) -> Answer:
        """The next complete response (interim 1xx ones included)."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                raise ConnectionError(f"closed before an answer; got {self._buffer!r}")
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            if not self._fill():
                raise ConnectionError("closed within an answer's body")
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def closed_by_peer(self) -> bool:
        """Whether the server closed the connection (waits up to the socket's timeout)."""
        try:
            return not self._fill() and not self._buffer
        except TimeoutError:
            return False


def request(method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> bytes:
    """A well-formed request's bytes (Content-Length set when there is a body)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    fields = dict(headers or {})
    if body is not None:
        fields.setdefault("Content-Type", "application/json")
        fields.setdefault("Content-Length", str(len(body)))
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def exchange(port: int, data: bytes) -> tuple[Answer, bool]:
    """Send ``data`` on a new connection: the answer, and whether the server then closed."""
    with Wire(port) as wire:
        wire.send(data)
        answer = wire.answer()
        wire.sock.settimeout(5)
        return answer, wire.closed_by_peer()
