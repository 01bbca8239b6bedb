"""schedule_rule: an EventBridge rule on a monitor's schedule (``rate()`` or ``cron()``); its
target is a ``schedule_target`` of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Stack, cfn_tags

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class ScheduleRule(Props):
    kind = "schedule_rule"

    rule_name: str
    schedule_expression: str
    state: str  # ENABLED or DISABLED
    description: str
    tags: dict[str, str]


def create(ctx: Context, p: ScheduleRule) -> Outputs:
    resp = ctx.client("events").put_rule(
        Name=p.rule_name, ScheduleExpression=p.schedule_expression, State=p.state,
        Description=p.description, Tags=cfn_tags(p.tags))
    return {"arn": resp["RuleArn"]}


def update(ctx: Context, p: ScheduleRule, _before: Deployed[ScheduleRule] | None) -> Outputs:
    return create(ctx, p)  # PutRule replaces by name


def delete(ctx: Context, d: Deployed[ScheduleRule], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("events").delete_rule(Name=d.props.rule_name))


def exists(ctx: Context, d: Deployed[ScheduleRule]) -> bool:
    ctx.client("events").describe_rule(Name=d.props.rule_name)
    return True


def cloudformation(p: ScheduleRule) -> CfnResource:
    return {"Type": "AWS::Events::Rule", "Properties": {
        "Name": p.rule_name, "ScheduleExpression": p.schedule_expression,
        "State": p.state, "Description": p.description}}


KIND = Kind(
    props=ScheduleRule, services=("events",), replace_on=frozenset({"rule_name"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation, attrs={"arn": "Arn"}),
)
