"""schedule_rule: an EventBridge rule of the default event bus, fired on a schedule (a
monitor's ``rate()`` or ``cron()``) or by the events that match its event pattern (the
stage's CodeDeploy deployments that failed or stopped); its targets are ``schedule_target``
resources of their own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import (
    ABSENT,
    Absent,
    CfnResource,
    Deployed,
    Kind,
    Outputs,
    Props,
    Stack,
    cfn_tags,
)

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class ScheduleRule(Props):
    kind = "schedule_rule"

    rule_name: str
    schedule_expression: str | Absent = ABSENT  # rate() or cron(); or...
    event_pattern: dict[str, Any] | Absent = ABSENT  # ...an EventBridge event pattern
    state: str  # ENABLED or DISABLED
    description: str
    tags: dict[str, str]

    def __post_init__(self) -> None:
        if (self.schedule_expression is ABSENT) == (self.event_pattern is ABSENT):
            raise ValueError(f"rule {self.rule_name}: give a schedule expression or an event "
                             "pattern (EventBridge wants at least one; mlops uses one)")


def _trigger(p: ScheduleRule) -> dict[str, str]:
    """PutRule's ScheduleExpression or EventPattern (a JSON string)."""
    if not isinstance(p.schedule_expression, Absent):
        return {"ScheduleExpression": p.schedule_expression}
    return {"EventPattern": json.dumps(p.event_pattern, sort_keys=True)}


def create(ctx: Context, p: ScheduleRule) -> Outputs:
    resp = ctx.client("events").put_rule(
        Name=p.rule_name, **_trigger(p), State=p.state, Description=p.description,
        Tags=cfn_tags(p.tags))
    return {"arn": resp["RuleArn"]}


def update(ctx: Context, p: ScheduleRule, _before: Deployed[ScheduleRule] | None) -> Outputs:
    return create(ctx, p)  # PutRule replaces by name


def delete(ctx: Context, d: Deployed[ScheduleRule], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("events").delete_rule(Name=d.props.rule_name))


def exists(ctx: Context, d: Deployed[ScheduleRule]) -> bool:
    ctx.client("events").describe_rule(Name=d.props.rule_name)
    return True


def cloudformation(p: ScheduleRule) -> CfnResource:
    trigger: dict[str, Any] = ({"ScheduleExpression": p.schedule_expression}
                               if not isinstance(p.schedule_expression, Absent)
                               else {"EventPattern": p.event_pattern})
    return {"Type": "AWS::Events::Rule", "Properties": {
        "Name": p.rule_name, **trigger, "State": p.state, "Description": p.description}}


KIND = Kind(
    props=ScheduleRule, services=("events",), replace_on=frozenset({"rule_name"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation, attrs={"arn": "Arn"}),
)
