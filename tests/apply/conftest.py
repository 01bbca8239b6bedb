"""A moto server for the apply tests: the state store, the lock and the audit log are real."""

from __future__ import annotations

from typing import Any

import pytest

from framework.runtime.clients import Connection
from tests.daemon import moto_endpoint

__all__ = ["conn", "endpoint", "moto_endpoint"]


@pytest.fixture(scope="module")
def endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


@pytest.fixture
def conn(endpoint: str) -> Connection:
    return Connection(region="us-east-1", endpoint_url=endpoint, dummy_credentials=True,
                      max_attempts=1)


@pytest.fixture
def s3(conn: Connection) -> Any:
    return conn.client("s3")
