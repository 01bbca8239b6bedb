"""A real local AWS daemon (moto server behind the framework's write journal) for the tests of
retrain requests, and a fresh registry bucket per test."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.daemon import aws, s3

__all__ = ["aws", "bucket", "s3"]


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"retrain-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
