"""A real local AWS daemon (moto server behind the framework's write journal) per session, and
a fresh registry bucket per test."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from framework.apply.audit import AuditLog
from framework.registry.store import Registry
from tests.daemon import aws, s3

__all__ = ["aws", "reg", "s3"]


@pytest.fixture
def reg(s3: Any, tmp_path: Path) -> Registry:
    bucket = f"reg-{uuid.uuid4().hex[:12]}"
    registry = Registry(s3=s3, bucket=bucket, actor="tester",
                        audit=AuditLog(s3=s3, bucket=bucket, local_file=tmp_path / "audit.jsonl"))
    registry.ensure_bucket("us-east-1")
    return registry


def meta_for(name: str, version: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data), "metrics": {"auc": 0.9}, **extra}


def put(reg: Registry, name: str, version: str, data: bytes, **extra: Any) -> Any:
    prov = {"created_at": "2026-01-01T00:00:00.000000Z", "author": "tester",
            "code": {"commit": "abc", "dirty": False}}
    return reg.register(name, version, data, meta_for(name, version, data, **extra), prov)
