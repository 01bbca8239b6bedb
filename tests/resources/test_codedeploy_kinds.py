"""The CodeDeploy rollout's kinds against a real local AWS (its CodeDeploy and CloudWatch):
each created, found, updated and deleted through the provider, as apply and destroy call
them; a deployment created and recorded; what AWS refuses refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framework import local
from framework.plan.state import Entry
from framework.providers.aws import AwsProvider
from tests.local.conftest import start_daemon
from tests.local.support import REGION, create_function, update_code

GROUP: dict[str, Any] = {
    "application_name": "shop-dev", "group_name": "shop-dev-score", "endpoint": "score",
    "service_role_arn": "arn:aws:iam::123456789012:role/shop-dev-codedeploy-fn",
    "config_name": "shop-dev-Canary10Percent3Seconds", "alarms": ["shop-dev-score-errors"],
    "rollback_events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"],
    "tags": {"mlops:endpoint": "score"}}
ALARM: dict[str, Any] = {
    "alarm_name": "shop-dev-score-errors", "description": "errors of score",
    "definition": {"Namespace": "mlops", "MetricName": "ServerErrors", "Statistic": "Sum",
                   "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.0,
                   "ComparisonOperator": "GreaterThanThreshold",
                   "TreatMissingData": "notBreaching"},
    "tags": {"mlops:endpoint": "score"}}
CONFIG: dict[str, Any] = {"config_name": "shop-dev-Canary10Percent3Seconds",
                          "compute_platform": "Lambda", "routing": "TimeBasedCanary",
                          "percentage": 10, "interval_s": 3}
APP: dict[str, Any] = {"application_name": "shop-dev", "compute_platform": "Lambda",
                       "tags": {"mlops:project": "shop"}}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsProvider]:
    home = tmp_path_factory.mktemp("kinds-aws")
    aws = start_daemon(home)
    try:
        yield AwsProvider(local.connection(aws, REGION), Path("."), local=True)
    finally:
        local.stop(home)


def entry(kind: str, props: dict[str, Any], outputs: dict[str, Any]) -> Entry:
    return Entry(kind, props, outputs)


def test_alarm_app_config_and_group_round_trip(provider: AwsProvider) -> None:
    made = {kind: provider.create(kind, props) for kind, props in (
        ("cloudwatch_alarm", ALARM), ("codedeploy_app", APP),
        ("codedeploy_deployment_config", CONFIG), ("codedeploy_deployment_group", GROUP))}
    assert made["cloudwatch_alarm"]["arn"].endswith(":alarm:shop-dev-score-errors")
    assert made["codedeploy_app"]["application_id"]
    cd = provider.client("codedeploy")
    config = cd.get_deployment_config(deploymentConfigName=CONFIG["config_name"])
    # The local AWS counts a custom config's intervals in seconds (AWS: minutes).
    assert config["deploymentConfigInfo"]["trafficRoutingConfig"] == {
        "type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10,
                                                       "canaryInterval": 3}}
    group = cd.get_deployment_group(applicationName="shop-dev",
                                    deploymentGroupName="shop-dev-score")["deploymentGroupInfo"]
    assert group["deploymentConfigName"] == CONFIG["config_name"]
    assert group["alarmConfiguration"]["alarms"] == [{"name": "shop-dev-score-errors"}]
    assert group["autoRollbackConfiguration"]["events"] == GROUP["rollback_events"]
    assert group["deploymentStyle"] == {"deploymentType": "BLUE_GREEN",
                                        "deploymentOption": "WITH_TRAFFIC_CONTROL"}
    # Created again (an apply that died before recording them): adopted, not refused.
    assert provider.create("codedeploy_app", APP)["application_id"] == \
        made["codedeploy_app"]["application_id"]
    assert provider.create("codedeploy_deployment_group", GROUP)["group_name"] == "shop-dev-score"
    # An update: other alarms, all at once.
    moved = {**GROUP, "alarms": [], "config_name": "CodeDeployDefault.LambdaAllAtOnce"}
    before = entry("codedeploy_deployment_group", GROUP, made["codedeploy_deployment_group"])
    provider.update("codedeploy_deployment_group", moved, before)
    group = cd.get_deployment_group(applicationName="shop-dev",
                                    deploymentGroupName="shop-dev-score")["deploymentGroupInfo"]
    assert group["deploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert group["alarmConfiguration"]["enabled"] is False
    # Deleted in reverse dependency order, as a destroy does; then none is found.
    entries = [entry("codedeploy_deployment_group", moved, {}),
               entry("codedeploy_deployment_config", CONFIG, {}),
               entry("codedeploy_app", APP, {}), entry("cloudwatch_alarm", ALARM, {})]
    for found in entries:
        assert provider.exists(found)
        provider.delete(found, destroying=True)
    for gone in entries:
        assert not provider.exists(gone)
        provider.delete(gone, destroying=True)  # a second delete is fine


def test_a_deployment_is_created_and_recorded(provider: AwsProvider) -> None:
    conn = provider.conn
    create_function(conn, "shop-dev-score", "v1")
    lam = conn.client("lambda")
    lam.publish_version(FunctionName="shop-dev-score")
    update_code(conn, "shop-dev-score", "v2")
    lam.publish_version(FunctionName="shop-dev-score")
    alias = provider.create("lambda_alias", {
        "function_name": "shop-dev-score", "alias": "live", "function_version": "1",
        "deployment_group": {"application": "shop-dev", "group": "shop-dev-score"}})
    assert alias["version"] == "1"
    for kind, props in (("codedeploy_app", APP), ("codedeploy_deployment_config", CONFIG),
                        ("cloudwatch_alarm", ALARM), ("codedeploy_deployment_group", GROUP)):
        provider.create(kind, props)
    deployment = {"endpoint": "score", "application_name": "shop-dev",
                  "group_name": "shop-dev-score", "function_name": "shop-dev-score",
                  "alias": "live", "target_version": "2", "config_name": CONFIG["config_name"],
                  "hooks": {}, "description": "canary 10% for 3s, then 100%: 1.0.0 → 1.1.0"}
    started = provider.create("alias_deployment", deployment)
    assert started["status"] == "Created" and started["deployment_id"].startswith("d-")
    assert (started["current_version"], started["target_version"]) == ("1", "2")
    info = conn.client("codedeploy").get_deployment(
        deploymentId=started["deployment_id"])["deploymentInfo"]
    spec = json.loads(info["revision"]["appSpecContent"]["content"])
    assert spec["Resources"] == [{"shop-dev-score": {"Type": "AWS::Lambda::Function",
                                                     "Properties": {
                                                         "Name": "shop-dev-score",
                                                         "Alias": "live",
                                                         "CurrentVersion": "1",
                                                         "TargetVersion": "2"}}}]
    # A lambda_alias a deployment moves never moves itself: it records what serves.
    recorded = entry("lambda_alias", {"function_name": "shop-dev-score", "alias": "live",
                                      "function_version": "1"}, alias)
    deadline = time.monotonic() + 60
    while provider.observe(entry("alias_deployment", deployment, started))["status"] \
            != "Succeeded":
        assert time.monotonic() < deadline, "the deployment did not end"
        time.sleep(0.5)
    ended = provider.update("alias_deployment", deployment,
                            entry("alias_deployment", deployment, started))
    assert ended["status"] == "Succeeded" and ended["deployment_id"] == started["deployment_id"]
    moved = provider.update("lambda_alias", {**recorded.props, "function_version": "1",
                                             "deployment_group": {"application": "shop-dev",
                                                                  "group": "shop-dev-score"}},
                            recorded)
    assert moved["version"] == "2"  # what serves, not the version its properties name
    # The same target again: nothing to deploy.
    again = provider.create("alias_deployment", deployment)
    assert again["status"] == "Skipped" and again["deployment_id"] == ""
