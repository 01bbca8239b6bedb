"""The one module that creates boto3 clients, for every target and for handlers.

A ``Connection`` says where the control plane is (real AWS, LocalStack, the embedded local
AWS) and how to authenticate. Handlers use ``Connection.from_env()``: inside Lambda that is
real AWS; on the local data plane the runner sets ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account


@dataclass(frozen=True)
class Connection:
    """Where and how to reach AWS APIs."""

    region: str
    endpoint_url: str | None = None
    profile: str | None = None
    dummy_credentials: bool = False  # local AWS and LocalStack accept any keys
    max_attempts: int = 3
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    @classmethod
    def from_env(cls) -> Connection:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return cls(region=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)

    def client(self, service: str) -> Any:
        return _client(self, service)


@lru_cache(maxsize=64)
def _client(conn: Connection, service: str) -> Any:
    from botocore.config import Config as BotoConfig

    cfg = BotoConfig(
        region_name=conn.region,
        retries={"max_attempts": conn.max_attempts, "mode": "standard"},
        connect_timeout=conn.connect_timeout,
        read_timeout=conn.read_timeout,
        # S3 conditional writes and replays are simpler without aws-chunked trailers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # Presigned S3 links (the published dashboard) as SigV4, which every region accepts
        # and which lives at most a week; botocore would otherwise presign with SigV2.
        signature_version="s3v4" if service == "s3" else None,
    )
    kwargs: dict[str, Any] = {"config": cfg}
    if conn.endpoint_url:
        kwargs["endpoint_url"] = conn.endpoint_url
    if conn.dummy_credentials:
        kwargs["aws_access_key_id"] = "testing"
        kwargs["aws_secret_access_key"] = "testing"
    return _session(conn.profile).client(service, **kwargs)


@lru_cache(maxsize=8)
def _session(profile: str | None) -> Any:
    """One session per profile, so clients share botocore's loaded service data."""
    import boto3

    return boto3.session.Session(profile_name=profile)
