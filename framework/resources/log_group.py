"""log_group: a CloudWatch Logs group with its retention (each function's, the API's access
log)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Stack, cfn_tags

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class LogGroup(Props):
    kind = "log_group"

    name: str
    retention_days: int
    tags: dict[str, str]


def create(ctx: Context, p: LogGroup) -> Outputs:
    ctx.attempt(lambda: ctx.client("logs").create_log_group(logGroupName=p.name, tags=p.tags),
                codes={"ResourceAlreadyExistsException"})
    return update(ctx, p, None)


def update(ctx: Context, p: LogGroup, _before: Deployed[LogGroup] | None) -> Outputs:
    ctx.client("logs").put_retention_policy(logGroupName=p.name,
                                            retentionInDays=p.retention_days)
    return {"name": p.name}


def delete(ctx: Context, d: Deployed[LogGroup], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("logs").delete_log_group(logGroupName=d.props.name))


def exists(ctx: Context, d: Deployed[LogGroup]) -> bool:
    groups = ctx.pages(ctx.client("logs"), "describe_log_groups", "logGroups",
                       logGroupNamePrefix=d.props.name)
    return any(g["logGroupName"] == d.props.name for g in groups)


def cloudformation(p: LogGroup) -> CfnResource:
    return {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": p.name, "RetentionInDays": p.retention_days,
        "Tags": cfn_tags(p.tags)}}


KIND = Kind(
    props=LogGroup, services=("logs",), replace_on=frozenset({"name"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation),
)
