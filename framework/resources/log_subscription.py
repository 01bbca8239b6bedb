"""log_subscription: the lines of a log group that match a pattern (a function's capture
rows), sent by CloudWatch Logs to a Firehose stream through a role it assumes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.errors import DeployError
from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Refused, Stack

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class LogSubscription(Props):
    kind = "log_subscription"

    log_group: str
    filter_name: str
    filter_pattern: str
    destination_arn: str
    role_arn: str


def delivery_not_ready(r: Refused) -> bool:
    """CloudWatch Logs could not send its test message through a subscription's role moments
    after the role (or stream) was made: ``InvalidParameterException`` "Could not deliver test
    message to specified Firehose stream. Check if the given Firehose stream is in ACTIVE
    state." """
    return (r.code == "InvalidParameterException"
            and "could not deliver test message" in r.message.lower())


def create(ctx: Context, p: LogSubscription) -> Outputs:
    logs = ctx.client("logs")

    def put() -> Any:
        return logs.put_subscription_filter(
            logGroupName=p.log_group, filterName=p.filter_name,
            filterPattern=p.filter_pattern, destinationArn=p.destination_arn,
            roleArn=p.role_arn)

    def fail(r: Refused, seconds: float) -> DeployError:
        return DeployError(
            f"CloudWatch Logs still cannot send to {p.destination_arn} through "
            f"{p.role_arn} after {seconds:g} s: {r.message}",
            hint="the role's trust policy must name logs.amazonaws.com and its policy allow "
                 "firehose:PutRecord* on the stream; IAM changes usually propagate within a "
                 "minute, so deploying again often finishes the job")

    ctx.retry(put, delivery_not_ready, ctx.propagation_seconds, fail)
    return {"log_group": p.log_group, "filter_name": p.filter_name}


def update(ctx: Context, p: LogSubscription,
           _before: Deployed[LogSubscription] | None) -> Outputs:
    return create(ctx, p)  # PutSubscriptionFilter replaces by name


def delete(ctx: Context, d: Deployed[LogSubscription], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("logs").delete_subscription_filter(
        logGroupName=d.props.log_group, filterName=d.props.filter_name))


def exists(ctx: Context, d: Deployed[LogSubscription]) -> bool:
    found = ctx.attempt(lambda: ctx.client("logs").describe_subscription_filters(
        logGroupName=d.props.log_group, filterNamePrefix=d.props.filter_name),
        missing=True)
    if isinstance(found, Refused):
        return False
    return any(f["filterName"] == d.props.filter_name for f in found["subscriptionFilters"])


def cloudformation(p: LogSubscription) -> CfnResource:
    return {"Type": "AWS::Logs::SubscriptionFilter", "Properties": {
        "LogGroupName": p.log_group, "FilterName": p.filter_name,
        "FilterPattern": p.filter_pattern, "DestinationArn": p.destination_arn,
        "RoleArn": p.role_arn}}


KIND = Kind(
    props=LogSubscription, services=("logs",),
    replace_on=frozenset({"log_group", "filter_name"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation),
)
