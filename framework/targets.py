"""Targets: where a stage deploys. One provider serves all; they differ in endpoint and keys.

- ``local``: the embedded local AWS (moto control plane + the framework's data plane),
  started on demand and persisted under ``.mlops/local``;
- ``localstack``: LocalStack at the stage's ``endpoint_url`` or ``AWS_ENDPOINT_URL``;
- ``aws``: AWS with the standard credential chain (profile, environment, role).
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from framework.config.models import TargetKind
from framework.errors import TargetUnavailableError
from framework.runtime.clients import Connection

LOCALSTACK_DEFAULT = "http://localhost:4566"


class LocalStoppedError(TargetUnavailableError):
    """The stage's local AWS is not running, and the caller did not start it."""


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    region: str
    conn: Connection
    account_id: str
    actor: str  # caller identity ARN, recorded in audit records
    gateway_url: str | None = None  # local data plane only

    def endpoint_url(self, api: dict[str, Any], path: str) -> str:
        """Public URL of a route of a deployed HTTP API."""
        if self.gateway_url:
            return f"{self.gateway_url}/{api['api_id']}{path}"
        return f"{api.get('endpoint', '')}{path}"

    def refresh_gateway(self) -> None:
        if not self.gateway_url:
            return
        req = urllib.request.Request(f"{self.gateway_url}/_mlops/refresh", method="POST",
                                     data=b"")
        with contextlib.suppress(OSError):  # the gateway re-reads routes within seconds
            urllib.request.urlopen(req, timeout=5).read()


def connect(kind: TargetKind, region: str, *, local_home: Path, endpoint_url: str | None,
            profile: str | None, start_local: bool = True) -> Target:
    gateway_url = None
    if kind is TargetKind.local:
        from framework import local

        aws = local.ensure_running(local_home) if start_local else local.status(local_home)
        if aws is None:
            raise LocalStoppedError("the local AWS is not running",
                                         hint="start it with `mlops local start`")
        conn = local.connection(aws, region)
        gateway_url = aws.gateway_url
    elif kind is TargetKind.localstack:
        url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or LOCALSTACK_DEFAULT
        conn = Connection(region=region, endpoint_url=url, dummy_credentials=True)
    else:
        conn = Connection.control_plane(region, profile)
    try:
        ident = conn.client("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        where = conn.endpoint_url or f"AWS {region}"
        raise TargetUnavailableError(
            f"cannot reach the {kind.value} control plane at {where}: {exc}",
            hint={"local": "run `mlops local status`",
                  "localstack": "start LocalStack, or set the stage's endpoint_url",
                  "aws": "check your credentials (AWS_PROFILE, `aws sts get-caller-identity`)"}
            [kind.value]) from exc
    return Target(kind=kind, region=region, conn=conn, account_id=str(ident["Account"]),
                  actor=str(ident["Arn"]), gateway_url=gateway_url)
