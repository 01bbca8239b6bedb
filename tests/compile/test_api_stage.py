"""The HTTP API's stage: access log on by default, throttling per project and per endpoint,
compiled, exported to CloudFormation (and accepted by cfn-lint), and applied on AWS with
UpdateStage (a Stubber answers as API Gateway does; moto has no UpdateStage)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from framework.compile import compile_config
from framework.config.models import Config
from framework.plan.state import Entry
from framework.providers.aws import AwsProvider
from framework.synth import ACCOUNT, REGION, logical_id, synthesize, to_json
from tests.compile.test_compile import SPEC, context


def throttled() -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec["api"] = {"throttle": {"rate": 100, "burst": 200}}
    name = sorted(spec["endpoints"])[0]
    spec["endpoints"][name]["throttle"] = {"rate": 5, "burst": 10}
    return spec


def test_access_log_is_on_by_default_with_a_log_group_of_its_own() -> None:
    graph = compile_config(Config.model_validate(SPEC), context())
    stage = graph.resources["stage.api"]
    assert stage.props["access_log"]["destination_arn"].endswith(
        ":log-group:/aws/vendedlogs/apigateway/fraud-dev")
    assert '"status":"$context.status"' in stage.props["access_log"]["format"]
    assert stage.props["throttle"] is None and stage.props["route_throttles"] == {}
    assert graph.resources["logs.api"].props["retention_days"] == 30
    off = compile_config(Config.model_validate({**SPEC, "api": {"access_log": False}}),
                         context())
    assert off.resources["stage.api"].props["access_log"] is None
    assert "logs.api" not in off.resources


def test_throttles_compile_to_the_default_and_to_the_endpoints_routes() -> None:
    graph = compile_config(Config.model_validate(throttled()), context())
    stage = graph.resources["stage.api"]
    assert stage.props["throttle"] == {"rate": 100.0, "burst": 200}
    name = sorted(SPEC["endpoints"])[0]
    route = SPEC["endpoints"][name]["route"]
    assert stage.props["route_throttles"][route] == {"rate": 5.0, "burst": 10}
    # every route of the endpoint (feedback, OIP v2, ...), each of them existing first
    keys = {graph.resources[d].props["route_key"] for d in stage.depends_on
            if d.startswith("route.")}
    assert keys == set(stage.props["route_throttles"])


def test_the_stage_in_cloudformation(tmp_path: Path) -> None:
    graph = compile_config(Config.model_validate(throttled()),
                           context(account_id=ACCOUNT, region=REGION))
    template = synthesize(graph, description="throttled")
    stage = template["Resources"][logical_id("stage.api")]
    props = stage["Properties"]
    assert props["DefaultRouteSettings"] == {"ThrottlingRateLimit": 100.0,
                                             "ThrottlingBurstLimit": 200}
    assert set(props["RouteSettings"]) and all(
        v == {"ThrottlingRateLimit": 5.0, "ThrottlingBurstLimit": 10}
        for v in props["RouteSettings"].values())
    assert props["AccessLogSettings"]["DestinationArn"] == {"Fn::Sub": (
        "arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        "/aws/vendedlogs/apigateway/fraud-dev")}
    assert "LogsApi" in stage["DependsOn"]
    assert template["Resources"]["LogsApi"]["Type"] == "AWS::Logs::LogGroup"
    cfnlint = pytest.importorskip("cfnlint.api")
    path = tmp_path / "template.json"
    path.write_text(to_json(template))
    matches = cfnlint.lint_file(path, config=cfnlint.ManualArgs(regions=["us-east-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id[0] in "EW"] == []


def stage_props(**changes: Any) -> dict[str, Any]:
    return {"api_id": "a1", "stage": "$default", "auto_deploy": True,
            "access_log": {"destination_arn": "arn:aws:logs:eu-west-1:123456789012:log-group:"
                                              "/aws/vendedlogs/apigateway/fraud-dev",
                           "format": '{"requestId":"$context.requestId"}'},
            "throttle": None, "route_throttles": {"POST /score": {"rate": 5.0, "burst": 10}},
            **changes}


class Conn:
    endpoint_url = None  # AWS

    def __init__(self) -> None:
        self.api = boto3.client("apigatewayv2", region_name="eu-west-1",
                                aws_access_key_id="k", aws_secret_access_key="s")
        self.stub = Stubber(self.api)
        self.stub.activate()

    def client(self, service: str) -> Any:
        assert service == "apigatewayv2"
        return self.api


def test_on_aws_the_stage_is_updated_in_place_and_removed_settings_deleted(
        tmp_path: Path) -> None:
    conn = Conn()
    provider = AwsProvider(conn, tmp_path)  # type: ignore[arg-type]
    new = stage_props(access_log=None, throttle={"rate": 100.0, "burst": 200},
                      route_throttles={})
    conn.stub.add_response("update_stage", {}, {
        "ApiId": "a1", "StageName": "$default", "AutoDeploy": True,
        "DefaultRouteSettings": {"ThrottlingRateLimit": 100.0, "ThrottlingBurstLimit": 200},
        "RouteSettings": {}})
    conn.stub.add_response("delete_access_log_settings", {},
                           {"ApiId": "a1", "StageName": "$default"})
    conn.stub.add_response("delete_route_settings", {},
                           {"ApiId": "a1", "StageName": "$default", "RouteKey": "POST /score"})
    provider.update("api_stage", new, Entry("api_stage", stage_props(), {}))
    conn.stub.assert_no_pending_responses()


def test_on_aws_a_stage_an_older_deploy_made_is_adopted(tmp_path: Path) -> None:
    conn = Conn()
    provider = AwsProvider(conn, tmp_path)  # type: ignore[arg-type]
    conn.stub.add_client_error("create_stage", "ConflictException",
                               "Stage already exists", 409)
    conn.stub.add_response("update_stage", {})
    out = provider.create("api_stage", stage_props())
    assert out == {"stage": "$default", "api_id": "a1"}
    conn.stub.assert_no_pending_responses()
