"""cloudwatch_alarm: one signal of an endpoint's rollout watch (its error rate, its function
errors, its invalid-input rate, its p99 latency) as a CloudWatch alarm on the handler's
metrics or Lambda's (``framework.rollout.alarms`` declares it); the endpoint's CodeDeploy
deployment group stops and rolls back a deployment while one of its alarms is in ALARM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Stack, cfn_tags

if TYPE_CHECKING:
    from framework.providers.aws import Context

# PutMetricAlarm's parameters and the CloudFormation properties they are (same names, but
# for the description): the rest of the request, as ``framework.rollout.alarms`` writes it.
DEFINITION_KEYS = ("Metrics", "Namespace", "MetricName", "Dimensions", "Statistic",
                   "ExtendedStatistic", "Unit", "Period", "ComparisonOperator", "Threshold",
                   "EvaluationPeriods", "DatapointsToAlarm", "TreatMissingData")


@dataclass(frozen=True, kw_only=True)
class CloudwatchAlarm(Props):
    kind = "cloudwatch_alarm"

    alarm_name: str
    description: str
    definition: dict[str, Any]  # PutMetricAlarm's other parameters (DEFINITION_KEYS)
    tags: dict[str, str]


def from_request(request: dict[str, Any]) -> CloudwatchAlarm:
    """The alarm of a PutMetricAlarm request (``framework.rollout.alarms.endpoint_alarms``)."""
    unknown = set(request) - {*DEFINITION_KEYS, "AlarmName", "AlarmDescription", "Tags"}
    if unknown:
        raise ValueError(f"PutMetricAlarm parameters no alarm resource keeps: {sorted(unknown)}")
    return CloudwatchAlarm(
        alarm_name=request["AlarmName"], description=request.get("AlarmDescription", ""),
        definition={k: request[k] for k in DEFINITION_KEYS if k in request},
        tags={t["Key"]: t["Value"] for t in request.get("Tags", [])})


def _put(ctx: Context, p: CloudwatchAlarm) -> None:
    ctx.client("cloudwatch").put_metric_alarm(
        AlarmName=p.alarm_name, AlarmDescription=p.description, ActionsEnabled=False,
        Tags=cfn_tags(p.tags), **p.definition)


def _arn(ctx: Context, name: str) -> str | None:
    found = ctx.client("cloudwatch").describe_alarms(AlarmNames=[name]).get("MetricAlarms", [])
    return str(found[0]["AlarmArn"]) if found else None


def create(ctx: Context, p: CloudwatchAlarm) -> Outputs:
    _put(ctx, p)  # PutMetricAlarm creates, or replaces what an interrupted apply made
    return {"alarm_name": p.alarm_name, "arn": _arn(ctx, p.alarm_name)}


def update(ctx: Context, p: CloudwatchAlarm, _before: Deployed[CloudwatchAlarm] | None,
           ) -> Outputs:
    _put(ctx, p)
    arn = _arn(ctx, p.alarm_name)
    if arn and p.tags:  # PutMetricAlarm ignores the tags of an alarm that exists
        ctx.client("cloudwatch").tag_resource(ResourceARN=arn, Tags=cfn_tags(p.tags))
    return {"alarm_name": p.alarm_name, "arn": arn}


def delete(ctx: Context, d: Deployed[CloudwatchAlarm], _destroying: bool) -> None:
    ctx.client("cloudwatch").delete_alarms(AlarmNames=[d.props.alarm_name])


def exists(ctx: Context, d: Deployed[CloudwatchAlarm]) -> bool:
    return _arn(ctx, d.props.alarm_name) is not None


def cloudformation(p: CloudwatchAlarm) -> CfnResource:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmName": p.alarm_name, "AlarmDescription": p.description, "ActionsEnabled": False,
        **p.definition, "Tags": cfn_tags(p.tags)}}


KIND = Kind(
    props=CloudwatchAlarm, services=("cloudwatch",), replace_on=frozenset({"alarm_name"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation, attrs={"arn": "Arn"}),
)
