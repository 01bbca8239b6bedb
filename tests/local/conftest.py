"""Fixtures: a real local AWS daemon (subprocess) and an echo function deployed into it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from framework import local
from framework.runtime.clients import Connection
from tests.ports import free_port_pair

from .support import REGION, create_function, create_http_api, update_code

ROUTING_SEED = "1234"


@dataclass(frozen=True)
class Deployed:
    aws: local.LocalAWS
    conn: Connection
    api_id: str  # specific routes
    default_api_id: str  # only $default
    function_arn: str

    def url(self, path: str, api_id: str | None = None) -> str:
        return f"{self.aws.gateway_url}/{api_id or self.api_id}{path}"


def start_daemon(home: Path, port: int | None = None) -> local.LocalAWS:
    saved = os.environ.get("MLOPS_ROUTING_SEED")
    os.environ["MLOPS_ROUTING_SEED"] = ROUTING_SEED
    try:
        return local.start(home, port or free_port_pair())
    finally:
        if saved is None:
            os.environ.pop("MLOPS_ROUTING_SEED", None)
        else:
            os.environ["MLOPS_ROUTING_SEED"] = saved


@pytest.fixture(scope="session")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.LocalAWS]:
    home = tmp_path_factory.mktemp("local-aws")
    running = start_daemon(home)
    yield running
    local.stop(home)


@pytest.fixture(scope="session")
def deployed(aws: local.LocalAWS) -> Deployed:
    """Function ``echo``: version 1 (tag v1), version 2 (tag v2), alias ``live`` = 1 + 30% 2."""
    conn = local.connection(aws, REGION)
    lam = conn.client("lambda")
    fn = create_function(conn, "echo", "v1", timeout=2)
    lam.publish_version(FunctionName="echo")
    update_code(conn, "echo", "v2")
    lam.publish_version(FunctionName="echo")
    lam.create_alias(
        FunctionName="echo",
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
    )
    lam.create_alias(FunctionName="echo", Name="stable", FunctionVersion="1")
    arn = fn["FunctionArn"]
    api_id = create_http_api(
        conn,
        "echo-api",
        {
            "GET /items/{id}": f"{arn}:stable",
            "POST /diagnosis/predict": f"{arn}:live",
            "ANY /v2/{proxy+}": f"{arn}:2",
            "GET /latest": arn,
        },
    )
    default_api_id = create_http_api(conn, "default-api", {"$default": f"{arn}:1"})
    return Deployed(aws, conn, api_id, default_api_id, arn)
