"""codedeploy_deployment_group: how an endpoint's ``live`` alias is deployed — its deployment
config, the service role CodeDeploy acts with, the endpoint's alarms (a deployment stops
while one is in ALARM) and automatic rollback when a deployment fails or is stopped on an
alarm. Lambda deployments are blue/green with traffic control."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from framework.errors import DeployError
from framework.resources.base import (
    CfnResource,
    Deployed,
    Kind,
    Outputs,
    Props,
    Ref,
    Refused,
    Stack,
    cfn_tags,
)

if TYPE_CHECKING:
    from framework.providers.aws import Context

EXISTS = frozenset({"DeploymentGroupAlreadyExistsException"})
MISSING = frozenset({"DeploymentGroupDoesNotExistException", "ApplicationDoesNotExistException"})
T = TypeVar("T")
STYLE = {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}


@dataclass(frozen=True, kw_only=True)
class CodedeployDeploymentGroup(Props):
    kind = "codedeploy_deployment_group"

    application_name: str
    group_name: str
    endpoint: str  # whose alias it deploys
    service_role_arn: str | Ref
    config_name: str  # a codedeploy_deployment_config's, or CodeDeploy's own
    alarms: list[str]  # alarm names: a deployment stops (and rolls back) while one is ALARM
    rollback_events: list[str]  # DEPLOYMENT_FAILURE, DEPLOYMENT_STOP_ON_ALARM, ...
    tags: dict[str, str]


def _settings(p: CodedeployDeploymentGroup) -> dict[str, Any]:
    return {
        "deploymentConfigName": p.config_name, "serviceRoleArn": str(p.service_role_arn),
        "alarmConfiguration": {"enabled": bool(p.alarms), "ignorePollAlarmFailure": False,
                               "alarms": [{"name": name} for name in p.alarms]},
        "autoRollbackConfiguration": {"enabled": bool(p.rollback_events),
                                      "events": list(p.rollback_events)},
        "deploymentStyle": dict(STYLE)}


def _outputs(ctx: Context, p: CodedeployDeploymentGroup) -> Outputs:
    info = ctx.client("codedeploy").get_deployment_group(
        applicationName=p.application_name,
        deploymentGroupName=p.group_name)["deploymentGroupInfo"]
    return {"group_name": p.group_name, "group_id": info.get("deploymentGroupId", "")}


def _role_retry(ctx: Context, call: Callable[[], T], role: str) -> T:
    """A call naming a service role created moments ago: CodeDeploy refuses it
    (``InvalidRoleException``) until IAM has propagated it."""
    def fail(r: Refused, seconds: float) -> DeployError:
        return DeployError(f"CodeDeploy still cannot assume {role} after {seconds:g} s: "
                           f"{r.message}", hint="check the role's trust policy names "
                           "codedeploy.amazonaws.com (infra/iam/codedeploy-trust.json); "
                           "deploying again often finishes the job")
    return ctx.retry(call, lambda r: r.code == "InvalidRoleException",
                     ctx.propagation_seconds, fail)


def create(ctx: Context, p: CodedeployDeploymentGroup) -> Outputs:
    got = _role_retry(ctx, lambda: ctx.attempt(lambda: ctx.client("codedeploy")
                                               .create_deployment_group(
        applicationName=p.application_name, deploymentGroupName=p.group_name,
        tags=cfn_tags(p.tags), **_settings(p)), codes=EXISTS), str(p.service_role_arn))
    if isinstance(got, Refused):  # made by an apply that was interrupted: set it as declared
        return update(ctx, p, None)
    return {"group_name": p.group_name, "group_id": got["deploymentGroupId"]}


def update(ctx: Context, p: CodedeployDeploymentGroup,
           _before: Deployed[CodedeployDeploymentGroup] | None) -> Outputs:
    _role_retry(ctx, lambda: ctx.client("codedeploy").update_deployment_group(
        applicationName=p.application_name, currentDeploymentGroupName=p.group_name,
        **_settings(p)), str(p.service_role_arn))
    return _outputs(ctx, p)


def delete(ctx: Context, d: Deployed[CodedeployDeploymentGroup], _destroying: bool) -> None:
    ctx.attempt(lambda: ctx.client("codedeploy").delete_deployment_group(
        applicationName=d.props.application_name, deploymentGroupName=d.props.group_name),
        codes=MISSING)


def exists(ctx: Context, d: Deployed[CodedeployDeploymentGroup]) -> bool:
    got = ctx.attempt(lambda: ctx.client("codedeploy").get_deployment_group(
        applicationName=d.props.application_name, deploymentGroupName=d.props.group_name),
        codes=MISSING)
    return not isinstance(got, Refused)


def cloudformation(p: CodedeployDeploymentGroup) -> CfnResource:
    return {"Type": "AWS::CodeDeploy::DeploymentGroup", "Properties": {
        "ApplicationName": p.application_name, "DeploymentGroupName": p.group_name,
        "ServiceRoleArn": p.service_role_arn, "DeploymentConfigName": p.config_name,
        "DeploymentStyle": {"DeploymentType": STYLE["deploymentType"],
                            "DeploymentOption": STYLE["deploymentOption"]},
        "AlarmConfiguration": {"Enabled": bool(p.alarms),
                               "Alarms": [{"Name": name} for name in p.alarms]},
        "AutoRollbackConfiguration": {"Enabled": bool(p.rollback_events),
                                      "Events": list(p.rollback_events)},
        "Tags": cfn_tags(p.tags)}}


KIND = Kind(
    props=CodedeployDeploymentGroup, services=("codedeploy",),
    replace_on=frozenset({"application_name", "group_name"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation, attrs={"group_name": "Ref"}),
)
