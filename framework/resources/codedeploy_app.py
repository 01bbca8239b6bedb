"""codedeploy_app: the stage's CodeDeploy application (compute platform Lambda), under which
each endpoint whose rollout is not all at once has a deployment group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from framework.resources.base import (
    CfnResource,
    Deployed,
    Kind,
    Outputs,
    Props,
    Refused,
    Stack,
    cfn_tags,
)

if TYPE_CHECKING:
    from framework.providers.aws import Context

EXISTS = frozenset({"ApplicationAlreadyExistsException"})
MISSING = frozenset({"ApplicationDoesNotExistException"})


@dataclass(frozen=True, kw_only=True)
class CodedeployApp(Props):
    kind = "codedeploy_app"

    application_name: str
    compute_platform: str  # Lambda
    tags: dict[str, str]


def create(ctx: Context, p: CodedeployApp) -> Outputs:
    got = ctx.attempt(lambda: ctx.client("codedeploy").create_application(
        applicationName=p.application_name, computePlatform=p.compute_platform,
        tags=cfn_tags(p.tags)), codes=EXISTS)
    if isinstance(got, Refused):  # made by an apply that was interrupted: adopt it
        return update(ctx, p, None)
    return {"application_name": p.application_name, "application_id": got["applicationId"]}


def update(ctx: Context, p: CodedeployApp, _before: Deployed[CodedeployApp] | None) -> Outputs:
    # Nothing of an application changes in place but its tags, which are set at creation.
    app = ctx.client("codedeploy").get_application(applicationName=p.application_name)
    return {"application_name": p.application_name,
            "application_id": app["application"]["applicationId"]}


def delete(ctx: Context, d: Deployed[CodedeployApp], _destroying: bool) -> None:
    ctx.attempt(lambda: ctx.client("codedeploy").delete_application(
        applicationName=d.props.application_name), codes=MISSING)


def exists(ctx: Context, d: Deployed[CodedeployApp]) -> bool:
    got = ctx.attempt(lambda: ctx.client("codedeploy").get_application(
        applicationName=d.props.application_name), codes=MISSING)
    return not isinstance(got, Refused)


def cloudformation(p: CodedeployApp) -> CfnResource:
    return {"Type": "AWS::CodeDeploy::Application", "Properties": {
        "ApplicationName": p.application_name, "ComputePlatform": p.compute_platform,
        "Tags": cfn_tags(p.tags)}}


KIND = Kind(
    props=CodedeployApp, services=("codedeploy",),
    replace_on=frozenset({"application_name", "compute_platform"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation, attrs={"application_name": "Ref"}),
)
