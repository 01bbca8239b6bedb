"""The one module that creates boto3 clients, for every target and for handlers.

A ``Connection`` says where the control plane is (real AWS, LocalStack, the embedded local
AWS) and how to authenticate. Handlers use ``Connection.from_env()``: inside Lambda that is
real AWS; on the local data plane the runner sets ``AWS_ENDPOINT_URL``.

Retries (botocore's standard mode: exponential backoff with jitter, throttling and transient
errors retried; its ``max_attempts`` counts the retries after the first attempt): a handler's
calls are retried ``HANDLER_MAX_ATTEMPTS`` times at most, since its caller waits for the
answer; the CLI's calls to AWS (``control_plane``) ``CONTROL_MAX_ATTEMPTS`` times, since a
parallel apply (``--parallelism 10``) meets the Lambda, IAM and CodeDeploy control planes'
request-rate limits (``TooManyRequestsException``, ``ThrottlingException``, ``Throttling``)
and a deploy should wait them out rather than stop half-way. The local AWS and LocalStack do
not throttle: their connections keep the handler's count, so a stopped one is reported soon.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account
HANDLER_MAX_ATTEMPTS = 3  # botocore's standard default: a request path answers fast
CONTROL_MAX_ATTEMPTS = 10  # deploys against AWS: throttled calls are waited out


@dataclass(frozen=True)
class Connection:
    """Where and how to reach AWS APIs."""

    region: str
    endpoint_url: str | None = None
    profile: str | None = None
    dummy_credentials: bool = False  # local AWS and LocalStack accept any keys
    max_attempts: int = HANDLER_MAX_ATTEMPTS
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_pool_connections: int = 10  # botocore's default: a client's threads beyond it reconnect

    @classmethod
    def from_env(cls) -> Connection:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return cls(region=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)

    @classmethod
    def control_plane(cls, region: str, profile: str | None = None) -> Connection:
        """The CLI's connection to AWS (plan, apply, rollouts): throttled calls are retried
        up to ``CONTROL_MAX_ATTEMPTS`` times."""
        return cls(region=region, profile=profile, max_attempts=CONTROL_MAX_ATTEMPTS)

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
        max_pool_connections=conn.max_pool_connections,
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
