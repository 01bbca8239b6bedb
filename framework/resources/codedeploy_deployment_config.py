"""codedeploy_deployment_config: how a CodeDeploy deployment shifts an alias' traffic — a
canary (a share for one interval, then all) or linear (the same share more every interval) —
made from an endpoint's rollout (``framework.rollout.strategy``). Endpoints with the same
shape share one; a config cannot change (CodeDeploy has no update), so another shape is
another config, made before the deployment group moves to it and deleted after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.errors import DeployError
from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Refused, Stack

if TYPE_CHECKING:
    from framework.providers.aws import Context

EXISTS = frozenset({"DeploymentConfigAlreadyExistsException"})
MISSING = frozenset({"DeploymentConfigDoesNotExistException"})
IN_USE = frozenset({"DeploymentConfigInUseException"})
KEYS = {"TimeBasedCanary": ("timeBasedCanary", "canaryPercentage", "canaryInterval"),
        "TimeBasedLinear": ("timeBasedLinear", "linearPercentage", "linearInterval")}


@dataclass(frozen=True, kw_only=True)
class CodedeployDeploymentConfig(Props):
    kind = "codedeploy_deployment_config"

    config_name: str
    compute_platform: str  # Lambda
    routing: str  # TimeBasedCanary or TimeBasedLinear
    percentage: int  # the canary's share, or the linear increment
    interval_s: int  # the bake time of a step, as declared (CodeDeploy: whole minutes)


def routing_config(p: CodedeployDeploymentConfig, unit_s: int) -> dict[str, Any]:
    """The request's ``trafficRoutingConfig``, intervals counted in units of ``unit_s``."""
    if p.interval_s % unit_s:
        raise DeployError(f"{p.config_name}: a bake time of {p.interval_s} s is not a whole "
                          f"number of {unit_s} s, the unit of this target's CodeDeploy",
                          hint="on AWS and LocalStack, declare `every` in whole minutes")
    key, share, interval = KEYS[p.routing]
    return {"type": p.routing, key: {share: p.percentage, interval: p.interval_s // unit_s}}


def create(ctx: Context, p: CodedeployDeploymentConfig) -> Outputs:
    routing = routing_config(p, ctx.interval_unit_s)
    got = ctx.attempt(lambda: ctx.client("codedeploy").create_deployment_config(
        deploymentConfigName=p.config_name, computePlatform=p.compute_platform,
        trafficRoutingConfig=routing), codes=EXISTS)
    if isinstance(got, Refused):  # made by an apply that was interrupted: the same name is
        return update(ctx, p, None)  # the same shape (the name is made from it)
    return {"config_name": p.config_name, "config_id": got["deploymentConfigId"]}


def update(ctx: Context, p: CodedeployDeploymentConfig,
           _before: Deployed[CodedeployDeploymentConfig] | None) -> Outputs:
    info = ctx.client("codedeploy").get_deployment_config(
        deploymentConfigName=p.config_name)["deploymentConfigInfo"]
    return {"config_name": p.config_name, "config_id": info.get("deploymentConfigId", "")}


def delete(ctx: Context, d: Deployed[CodedeployDeploymentConfig], _destroying: bool) -> None:
    got = ctx.attempt(lambda: ctx.client("codedeploy").delete_deployment_config(
        deploymentConfigName=d.props.config_name), codes=MISSING | IN_USE)
    if isinstance(got, Refused) and got.code in IN_USE:
        ctx.warnings.append(f"CodeDeploy deployment config {d.props.config_name} is still used "
                            "by a deployment group of another project; it was left in place")


def exists(ctx: Context, d: Deployed[CodedeployDeploymentConfig]) -> bool:
    got = ctx.attempt(lambda: ctx.client("codedeploy").get_deployment_config(
        deploymentConfigName=d.props.config_name), codes=MISSING)
    return not isinstance(got, Refused)


def cloudformation(p: CodedeployDeploymentConfig) -> CfnResource:
    routing = routing_config(p, 60)  # CloudFormation is AWS: minutes
    key, share, interval = KEYS[p.routing]
    inner = routing[key]
    return {"Type": "AWS::CodeDeploy::DeploymentConfig", "Properties": {
        "DeploymentConfigName": p.config_name, "ComputePlatform": p.compute_platform,
        "TrafficRoutingConfig": {"Type": p.routing, key[0].upper() + key[1:]: {
            share[0].upper() + share[1:]: inner[share],
            interval[0].upper() + interval[1:]: inner[interval]}}}}


KIND = Kind(
    props=CodedeployDeploymentConfig, services=("codedeploy",), replace_on=frozenset({"*"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation, attrs={"config_name": "Ref"}),
)
