"""framework.runtime.clients: how many attempts a throttled call gets, per kind of caller.

The CLI's connection to AWS waits throttling out (a parallel apply meets the control planes'
request-rate limits); a handler's request path, whose caller waits, does not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import ClientError

from framework.runtime.clients import (
    CONTROL_MAX_ATTEMPTS,
    HANDLER_MAX_ATTEMPTS,
    Connection,
)


def retries(conn: Connection, service: str) -> Any:
    return conn.client(service).meta.config.retries


@pytest.mark.parametrize("service", ["lambda", "codedeploy", "iam", "apigatewayv2"])
def test_the_clis_aws_clients_wait_throttling_out(service: str) -> None:
    conn = Connection.control_plane("eu-west-1", None)
    # botocore's max_attempts counts the retries: one first attempt more in all
    assert retries(conn, service) == {"total_max_attempts": CONTROL_MAX_ATTEMPTS + 1,
                                      "mode": "standard"}
    assert CONTROL_MAX_ATTEMPTS >= 10 > HANDLER_MAX_ATTEMPTS


def test_a_handlers_clients_keep_the_standard_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    conn = Connection.from_env()
    assert retries(conn, "s3") == {"total_max_attempts": HANDLER_MAX_ATTEMPTS + 1,
                                   "mode": "standard"}


@pytest.fixture
def throttling() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server that answers every call as Lambda answers a throttled one (429,
    TooManyRequestsException); the paths it was asked."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            asked.append(self.path)
            body = b'{"message": "Rate exceeded", "Reason": "CallerRateLimitExceeded"}'
            self.send_response(429)
            self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("attempts", "kind"), [(CONTROL_MAX_ATTEMPTS, "control plane"),
                                                (HANDLER_MAX_ATTEMPTS, "handler")])
def test_a_throttled_call_is_made_again_as_configured(
        throttling: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch, attempts: int,
        kind: str) -> None:
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)
    url, asked = throttling
    conn = Connection("eu-west-1", endpoint_url=url, dummy_credentials=True,
                      max_attempts=attempts)
    with pytest.raises(ClientError) as info:
        conn.client("lambda").list_functions()
    assert info.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert len(asked) == attempts + 1, kind


def test_the_aws_target_connects_through_the_control_plane_connection(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from framework import targets
    from framework.config.models import TargetKind

    made: list[Connection] = []

    class Refused(Exception):
        pass

    def client(self: Connection, service: str) -> Any:
        made.append(self)
        raise Refused(service)  # no call leaves the machine

    monkeypatch.setattr(Connection, "client", client)
    with pytest.raises(Refused):
        targets.connect(TargetKind.aws, "eu-west-1", local_home=tmp_path, endpoint_url=None,
                        profile=None)
    assert made and made[0].max_attempts == CONTROL_MAX_ATTEMPTS
