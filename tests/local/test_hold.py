"""``watch.hold_without_traffic``: the AfterAllowTraffic hook holds the deployment until
CloudWatch counts ``min_requests`` requests of the new model version, and fails it (CodeDeploy
rolls it back) rather than let it end unjudged. Against the local AWS's Lambda and CloudWatch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from framework import local
from framework.rollout.pretraffic import HOLD_MARGIN_S, HOLD_POLL_S, hold

from .support import REGION, create_function


def _held(aws: local.LocalAWS) -> tuple[Any, dict[str, Any]]:
    """Function ``held``, version 1 serving model m 1.1.0; a deployment moving its alias."""
    conn = local.connection(aws, REGION)
    lam = conn.client("lambda")
    create_function(conn, "held", "v1")
    lam.get_waiter("function_updated_v2").wait(FunctionName="held")
    lam.update_function_configuration(FunctionName="held", Environment={"Variables": {
        "MLOPS_MODEL_NAME": "m", "MLOPS_MODEL_VERSION": "1.1.0", "MLOPS_MODEL_SHA256": "ab"}})
    lam.get_waiter("function_updated_v2").wait(FunctionName="held")
    version = lam.publish_version(FunctionName="held")["Version"]
    appspec = {"Resources": [{"held": {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": "held", "Alias": "live", "CurrentVersion": version,
        "TargetVersion": version}}}]}
    info = {"revision": {"appSpecContent": {"content": json.dumps(appspec)}},
            "createTime": datetime.now(UTC) - timedelta(minutes=5)}
    return conn, info


def _requests(conn: Any, model_version: str, n: int) -> None:
    conn.client("cloudwatch").put_metric_data(Namespace="mlops", MetricData=[{
        "MetricName": "Requests", "Value": n, "Unit": "Count",
        "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
        "Dimensions": [{"Name": "FunctionName", "Value": "held"},
                       {"Name": "ModelVersion", "Value": model_version}]}])


def test_the_hook_holds_until_the_new_version_is_judged_or_fails_it(
        aws: local.LocalAWS) -> None:
    conn, info = _held(aws)
    spec = {"function": "held", "hold": {"min_requests": 10}}
    _requests(conn, "1.1.0", 4)
    _requests(conn, "1.0.0", 50)  # the old version's requests judge nothing of the new one

    # too little traffic while the hook still has time: it waits; then traffic comes
    waits: list[float] = []

    def traffic_arrives(seconds: float) -> None:
        waits.append(seconds)
        _requests(conn, "1.1.0", 6)

    verdict = hold(spec, info, conn, lambda: 600.0, traffic_arrives)
    assert waits == [HOLD_POLL_S]  # held once, not advanced
    assert verdict.status == "Succeeded"
    assert verdict.reason == "m 1.1.0 answered 10 requests (min_requests 10): judged by its alarms"

    # the hook's time runs out before enough traffic: the deployment fails (rolled back)
    spec = {"function": "held", "hold": {"min_requests": 25}}
    left = iter([600.0, HOLD_MARGIN_S])
    verdict = hold(spec, info, conn, lambda: next(left), lambda s: None)
    assert verdict.status == "Failed"
    assert verdict.reason == ("not enough traffic to judge m 1.1.0: 10 of 25 requests needed "
                              "(watch.hold_without_traffic)")
