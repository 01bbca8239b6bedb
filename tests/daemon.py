"""Servers for a test folder to import: a real local AWS daemon (moto server behind the
framework's write journal) for its session, ``aws`` and ``s3``; and a bare moto server for a
module, ``moto_endpoint`` (its URL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from framework import local
from tests.ports import free_port, free_port_pair


@pytest.fixture(scope="session")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.LocalAWS]:
    home = tmp_path_factory.mktemp("local-aws")
    running = local.start(home, free_port_pair())
    yield running
    local.stop(home)


@pytest.fixture
def s3(aws: local.LocalAWS) -> Any:
    return local.connection(aws, "us-east-1").client("s3")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
