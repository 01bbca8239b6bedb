"""The local CodeDeploy (``framework/local/codedeploy.py``) against a real local AWS daemon:
deployments of a Lambda alias shift its weights step by step and succeed; an alarm in ALARM,
a pre-traffic hook that reports Failed, or StopDeployment stop them and roll the alias back,
as GetDeployment and GetDeploymentTarget say in AWS's shapes; a deployment under way goes on
after the daemon restarts; and the API calls moto lacks answer as CodeDeploy does.

The daemon's own CloudWatch engine does not tick here (``MLOPS_LOG_SHIP_S``): the alarms'
states are set with SetAlarmState, as that engine sets them."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from framework import local
from framework.local.codedeploy import read_appspec
from framework.runtime.clients import Connection

from .conftest import start_daemon
from .support import REGION, create_function, make_zip, request, update_code

APP, GROUP = "shop-dev", "shop-dev-score"
ROLE = "arn:aws:iam::123456789012:role/shop-dev-codedeploy-fn"
HOOK = """
import json
import boto3


def handler(event, context):
    print(json.dumps({{"msg": "hook", "event": event}}))
    boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status="{status}")
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("codedeploy-aws")


@pytest.fixture(scope="module")
def aws(home: Path) -> Iterator[local.LocalAWS]:
    saved = os.environ.get("MLOPS_LOG_SHIP_S")
    os.environ["MLOPS_LOG_SHIP_S"] = "3600"  # no CloudWatch engine: the tests set alarms
    try:
        running = start_daemon(home)
    finally:
        if saved is None:
            os.environ.pop("MLOPS_LOG_SHIP_S", None)
        else:
            os.environ["MLOPS_LOG_SHIP_S"] = saved
    yield running
    local.stop(home)


@pytest.fixture(scope="module")
def conn(aws: local.LocalAWS) -> Connection:
    conn = local.connection(aws, REGION)
    lam = conn.client("lambda")
    create_function(conn, "score", "v1")
    for tag in ("v1", "v2", "v3", "v4", "v5"):  # versions 1-5
        if tag != "v1":
            update_code(conn, "score", tag)
        lam.publish_version(FunctionName="score")
    lam.create_alias(FunctionName="score", Name="live", FunctionVersion="1")
    for status in ("Succeeded", "Failed"):
        create_function(conn, f"hook-{status.lower()}", "hook", data=make_zip({
            "handlers/__init__.py": "", "handlers/echo.py": HOOK.format(status=status)}))
    cd = conn.client("codedeploy")
    cd.create_application(applicationName=APP, computePlatform="Lambda")
    cd.create_deployment_config(deploymentConfigName="shop-dev-Canary50Percent2Seconds",
                                computePlatform="Lambda", trafficRoutingConfig={
                                    "type": "TimeBasedCanary", "timeBasedCanary": {
                                        "canaryPercentage": 50, "canaryInterval": 2}})
    cw = conn.client("cloudwatch")
    cw.put_metric_alarm(AlarmName="shop-dev-score-errors", Namespace="mlops",
                        MetricName="ServerErrors", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanThreshold")
    cd.create_deployment_group(
        applicationName=APP, deploymentGroupName=GROUP, serviceRoleArn=ROLE,
        deploymentConfigName="shop-dev-Canary50Percent2Seconds",
        deploymentStyle={"deploymentType": "BLUE_GREEN",
                         "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        alarmConfiguration={"enabled": True, "alarms": [{"name": "shop-dev-score-errors"}]},
        autoRollbackConfiguration={"enabled": True, "events": [
            "DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]})
    return conn


def deploy(conn: Connection, current: str, target: str, hook: str | None = None,
           config: str | None = None, event: str = "BeforeAllowTraffic") -> str:
    spec: dict[str, Any] = {"version": 0.0, "Resources": [{"score": {
        "Type": "AWS::Lambda::Function", "Properties": {
            "Name": "score", "Alias": "live", "CurrentVersion": current,
            "TargetVersion": target}}}]}
    if hook:
        spec["Hooks"] = [{event: hook}]
    extra = {"deploymentConfigName": config} if config else {}
    made = conn.client("codedeploy").create_deployment(
        applicationName=APP, deploymentGroupName=GROUP, revision={
            "revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(spec)}},
        **extra)
    return str(made["deploymentId"])


def info(conn: Connection, deployment_id: str) -> dict[str, Any]:
    got: dict[str, Any] = conn.client("codedeploy").get_deployment(
        deploymentId=deployment_id)["deploymentInfo"]
    return got


def until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def ended(conn: Connection, deployment_id: str) -> dict[str, Any]:
    found: dict[str, Any] = until(
        lambda: (lambda i: i if i["status"] in ("Succeeded", "Failed", "Stopped") else None)(
            info(conn, deployment_id)), f"deployment {deployment_id} to end")
    return found


def alias(conn: Connection) -> tuple[str, dict[str, float]]:
    got = conn.client("lambda").get_alias(FunctionName="score", Name="live")
    return (str(got["FunctionVersion"]),
            (got.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})


def target(conn: Connection, deployment_id: str) -> dict[str, Any]:
    cd = conn.client("codedeploy")
    (target_id,) = cd.list_deployment_targets(deploymentId=deployment_id)["targetIds"]
    assert target_id == "score:live"
    got: dict[str, Any] = cd.get_deployment_target(
        deploymentId=deployment_id, targetId=target_id)["deploymentTarget"]
    assert got["deploymentTargetType"] == "LambdaTarget"
    return dict(got["lambdaTarget"])


def events(lambda_target: dict[str, Any]) -> dict[str, str]:
    return {e["lifecycleEventName"]: e["status"] for e in lambda_target["lifecycleEvents"]}


def test_a_canary_shifts_half_then_all_and_succeeds(conn: Connection) -> None:
    deployment_id = deploy(conn, "1", "2")
    assert deployment_id.startswith("d-") and len(deployment_id) == 11
    half = until(lambda: alias(conn) == ("1", {"2": 0.5}), "the canary's 50% step")
    assert half
    during = target(conn, deployment_id)
    assert during["lambdaFunctionInfo"] == {
        "functionName": "score", "functionAlias": "live", "currentVersion": "1",
        "targetVersion": "2", "targetVersionWeight": 0.5}
    assert events(during)["AllowTraffic"] == "InProgress"
    assert events(during)["BeforeAllowTraffic"] == "Skipped"  # no hook
    done = ended(conn, deployment_id)
    assert done["status"] == "Succeeded" and done["errorInformation"] == {}
    assert done["deploymentOverview"]["Succeeded"] == 1 and done["completeTime"]
    assert alias(conn) == ("2", {})
    after = target(conn, deployment_id)
    assert set(events(after).values()) == {"Succeeded", "Skipped"}
    assert after["lambdaFunctionInfo"]["targetVersionWeight"] == 1.0


def test_one_deployment_at_a_time_and_what_moto_lacks(conn: Connection) -> None:
    cd = conn.client("codedeploy")
    deployment_id = deploy(conn, "2", "3",
                           config="CodeDeployDefault.LambdaCanary10Percent5Minutes")
    with pytest.raises(ClientError, match="DeploymentLimitExceededException"):
        deploy(conn, "2", "3")
    until(lambda: alias(conn) == ("2", {"3": 0.1}), "the 10% step")
    with pytest.raises(ClientError, match="DeploymentIsNotInReadyStateException"):
        cd.continue_deployment(deploymentId=deployment_id, deploymentWaitType="READY_WAIT")
    answer = cd.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=False)
    assert answer["status"] == "Pending"
    stopped = ended(conn, deployment_id)
    assert stopped["status"] == "Stopped"
    assert stopped["errorInformation"]["code"] == "MANUAL_STOP"
    assert stopped["rollbackInfo"] == {}
    assert alias(conn) == ("2", {"3": 0.1})  # not rolled back: the traffic stays as it was
    with pytest.raises(ClientError, match="DeploymentAlreadyCompletedException"):
        cd.stop_deployment(deploymentId=deployment_id)
    conn.client("lambda").update_alias(FunctionName="score", Name="live", FunctionVersion="2",
                                       RoutingConfig={"AdditionalVersionWeights": {}})
    configs = cd.list_deployment_configs()["deploymentConfigsList"]
    assert "shop-dev-Canary50Percent2Seconds" in configs
    assert "CodeDeployDefault.LambdaAllAtOnce" in configs
    got = cd.get_deployment_config(deploymentConfigName="shop-dev-Canary50Percent2Seconds")
    assert got["deploymentConfigInfo"]["trafficRoutingConfig"]["timeBasedCanary"] == {
        "canaryPercentage": 50, "canaryInterval": 2}
    with pytest.raises(ClientError, match="DeploymentConfigInUseException"):
        cd.delete_deployment_config(deploymentConfigName="shop-dev-Canary50Percent2Seconds")
    with pytest.raises(ClientError, match="DeploymentConfigAlreadyExistsException"):
        cd.create_deployment_config(deploymentConfigName="shop-dev-Canary50Percent2Seconds",
                                    computePlatform="Lambda",
                                    trafficRoutingConfig={"type": "AllAtOnce"})
    with pytest.raises(ClientError, match="InvalidTrafficRoutingConfiguration"):
        cd.create_deployment_config(deploymentConfigName="bad", computePlatform="Lambda",
                                    trafficRoutingConfig={"type": "TimeBasedCanary",
                                                          "timeBasedCanary": {
                                                              "canaryPercentage": 100,
                                                              "canaryInterval": 1}})
    group = cd.get_deployment_group(applicationName=APP, deploymentGroupName=GROUP)
    assert group["deploymentGroupInfo"]["alarmConfiguration"]["alarms"] == [
        {"name": "shop-dev-score-errors"}]


def test_an_alarm_stops_the_deployment_and_rolls_it_back(conn: Connection) -> None:
    cw = conn.client("cloudwatch")
    deployment_id = deploy(conn, "2", "3")
    until(lambda: alias(conn) == ("2", {"3": 0.5}), "the canary's 50% step")
    cw.set_alarm_state(AlarmName="shop-dev-score-errors", StateValue="ALARM",
                       StateReason="Threshold Crossed: 1 datapoint [3.0] was greater than 1")
    try:
        stopped = ended(conn, deployment_id)
    finally:
        cw.set_alarm_state(AlarmName="shop-dev-score-errors", StateValue="OK",
                           StateReason="back to normal")
    assert stopped["status"] == "Stopped"
    assert stopped["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert "shop-dev-score-errors" in stopped["errorInformation"]["message"]
    rollback_id = stopped["rollbackInfo"]["rollbackDeploymentId"]
    assert alias(conn) == ("2", {})  # all traffic back on the current version
    rollback = info(conn, rollback_id)
    assert rollback["creator"] == "codeDeployRollback" and rollback["status"] == "Succeeded"
    assert rollback["rollbackInfo"] == {"rollbackTriggeringDeploymentId": deployment_id}
    assert read_appspec(rollback["revision"])["target"] == "2"
    assert events(target(conn, deployment_id))["AllowTraffic"] == "Failed"


def test_a_hook_that_fails_fails_the_deployment_before_any_traffic(conn: Connection) -> None:
    deployment_id = deploy(conn, "2", "3", hook="hook-failed")
    failed = ended(conn, deployment_id)
    assert failed["status"] == "Failed"
    assert failed["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert "reported Failed" in failed["errorInformation"]["message"]
    assert failed["rollbackInfo"]["rollbackDeploymentId"]
    lifecycle = target(conn, deployment_id)["lifecycleEvents"]
    before = next(e for e in lifecycle if e["lifecycleEventName"] == "BeforeAllowTraffic")
    assert before["status"] == "Failed" and "reported Failed" in before["diagnostics"]["message"]
    assert alias(conn) == ("2", {})  # never moved
    cd = conn.client("codedeploy")
    with pytest.raises(ClientError, match="LifecycleEventAlreadyCompletedException|"
                                          "InvalidLifecycleEventHookExecutionId"):
        cd.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id, lifecycleEventHookExecutionId="not-one",
            status="Succeeded")


def test_a_hook_that_succeeds_lets_the_traffic_move(conn: Connection) -> None:
    deployment_id = deploy(conn, "2", "3", hook="hook-succeeded",
                           config="CodeDeployDefault.LambdaAllAtOnce")
    done = ended(conn, deployment_id)
    assert done["status"] == "Succeeded", done
    assert events(target(conn, deployment_id))["BeforeAllowTraffic"] == "Succeeded"
    assert alias(conn) == ("3", {})


def test_an_after_traffic_hook_that_fails_takes_the_traffic_back(conn: Connection) -> None:
    deployment_id = deploy(conn, "3", "4", hook="hook-failed", event="AfterAllowTraffic",
                           config="CodeDeployDefault.LambdaAllAtOnce")
    failed = ended(conn, deployment_id)
    assert failed["status"] == "Failed", failed
    assert "AfterAllowTraffic" in failed["errorInformation"]["message"]
    lifecycle = events(target(conn, deployment_id))
    assert lifecycle["AllowTraffic"] == "Succeeded" and lifecycle["AfterAllowTraffic"] == "Failed"
    assert alias(conn) == ("3", {})  # all traffic had moved to 4: back on 3
    assert failed["rollbackInfo"]["rollbackDeploymentId"]


def test_a_deployment_goes_on_after_a_restart(conn: Connection, aws: local.LocalAWS,
                                              home: Path) -> None:
    deployment_id = deploy(conn, "3", "4",
                           config="CodeDeployDefault.LambdaCanary10Percent30Minutes")
    until(lambda: alias(conn) == ("3", {"4": 0.1}), "the 10% step")
    local.stop(home)
    restarted = start_daemon(home, int(aws.control_url.rsplit(":", 1)[1]))
    try:
        again = local.connection(restarted, REGION)
        assert info(again, deployment_id)["status"] == "InProgress"  # not Created again
        assert alias(again) == ("3", {"4": 0.1})
        # Thirty minutes later on the daemon's clock, the canary completes.
        moved = request(f"{restarted.gateway_url}/_mlops/clock", "POST",
                        json.dumps({"advance": 1801}).encode())
        assert moved.status == 200
        assert ended(again, deployment_id)["status"] == "Succeeded"
        assert alias(again) == ("4", {})
    finally:
        saved = json.loads((home / "codedeploy.json").read_text())
        assert deployment_id in {d["deployment_id"] for d in saved["deployments"]}


def test_an_appspec_that_is_not_the_alias_fails_at_once(conn: Connection) -> None:
    deployment_id = deploy(conn, "1", "5")  # the alias serves 4, not 1
    failed = ended(conn, deployment_id)
    assert failed["status"] == "Failed"
    assert failed["errorInformation"]["code"] == "INVALID_LAMBDA_CONFIGURATION"
    assert "CurrentVersion 1" in failed["errorInformation"]["message"]
