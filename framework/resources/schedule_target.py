"""schedule_target: what a ``schedule_rule`` invokes: a monitor's alias, passed the event's
own time through an input transformer (so a run that starts late still checks the window
ending at its scheduled time), or the stage's rollback notifier, passed the matched event as
it is (no transformer). In CloudFormation it is one of its rule's Targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import ABSENT, Absent, Deployed, FoldedInto, Kind, Outputs, Props

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class ScheduleTarget(Props):
    kind = "schedule_target"

    rule_name: str
    target_id: str
    arn: str  # the function alias invoked
    # EventBridge's InputTransformer, as its API spells it; unset: the event itself
    input_transformer: dict[str, Any] | Absent = ABSENT


def target(p: ScheduleTarget) -> dict[str, Any]:
    """The target as PutTargets and a rule's CloudFormation Targets both spell it."""
    return {"Id": p.target_id, "Arn": p.arn,
            **({} if isinstance(p.input_transformer, Absent)
               else {"InputTransformer": p.input_transformer})}


def create(ctx: Context, p: ScheduleTarget) -> Outputs:
    ctx.client("events").put_targets(Rule=p.rule_name, Targets=[target(p)])
    return {"target_id": p.target_id}


def update(ctx: Context, p: ScheduleTarget,
           _before: Deployed[ScheduleTarget] | None) -> Outputs:
    return create(ctx, p)


def delete(ctx: Context, d: Deployed[ScheduleTarget], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("events").remove_targets(
        Rule=d.props.rule_name, Ids=[d.props.target_id]))


def exists(ctx: Context, d: Deployed[ScheduleTarget]) -> bool:
    listed = ctx.pages(ctx.client("events"), "list_targets_by_rule", "Targets",
                       Rule=d.props.rule_name)
    return any(t["Id"] == d.props.target_id for t in listed)


KIND = Kind(
    props=ScheduleTarget, services=("events",), replace_on=frozenset({"rule_name", "target_id"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=FoldedInto(parent="schedule_rule", key="Targets", item=target),
)
