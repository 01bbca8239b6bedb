"""A real local AWS daemon (moto server behind the framework's write journal) for the tests of
retrain requests, and a fresh registry bucket per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from framework import local
from tests.ports import free_port_pair


@pytest.fixture(scope="session")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.LocalAWS]:
    home = tmp_path_factory.mktemp("retrain-aws")
    running = local.start(home, free_port_pair())
    yield running
    local.stop(home)


@pytest.fixture
def s3(aws: local.LocalAWS) -> Any:
    return local.connection(aws, "us-east-1").client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"retrain-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
