"""A real local AWS daemon (moto server behind the framework's write journal) for a test
folder's session: ``aws`` and ``s3`` fixtures for its conftest to import."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from framework import local
from tests.ports import free_port_pair


@pytest.fixture(scope="session")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.LocalAWS]:
    home = tmp_path_factory.mktemp("local-aws")
    running = local.start(home, free_port_pair())
    yield running
    local.stop(home)


@pytest.fixture
def s3(aws: local.LocalAWS) -> Any:
    return local.connection(aws, "us-east-1").client("s3")
