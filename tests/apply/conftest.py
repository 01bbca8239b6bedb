"""A moto server for the apply tests: the state store, the lock and the audit log are real."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from framework.runtime.clients import Connection
from tests.ports import free_port


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def conn(endpoint: str) -> Connection:
    return Connection(region="us-east-1", endpoint_url=endpoint, dummy_credentials=True,
                      max_attempts=1)


@pytest.fixture
def s3(conn: Connection) -> Any:
    return conn.client("s3")
