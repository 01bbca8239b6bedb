"""alias_deployment: a CodeDeploy deployment that moves an endpoint's ``live`` alias from the
version serving it to a new one, as its deployment group's config shifts traffic (a plan
action: the plan makes one whenever such an alias is to serve a new version). Create starts
it (``CreateDeployment`` with a Lambda AppSpec: the function, its alias, the current and the
target version, and the BeforeAllowTraffic hook when the endpoint has one) and returns at
once; CodeDeploy — on AWS, or the local AWS's engine — runs it. Update records how it ended;
a delete stops it if it still runs (and rolls it back)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import (
    ABSENT,
    Absent,
    Deployed,
    Implicit,
    Kind,
    Outputs,
    Props,
    Ref,
    Refused,
)

if TYPE_CHECKING:
    from framework.providers.aws import Context

ACTIVE = ("Created", "Queued", "InProgress", "Baking", "Ready")
DONE = ("Succeeded", "Failed", "Stopped")
SKIPPED = "Skipped"  # no deployment: the alias already served the target version
NOT_ACTIVE = frozenset({"DeploymentAlreadyCompletedException",
                        "DeploymentDoesNotExistException"})


@dataclass(frozen=True, kw_only=True)
class AliasDeployment(Props):
    kind = "alias_deployment"

    endpoint: str
    application_name: str
    group_name: str
    function_name: str
    alias: str
    target_version: str | Ref  # the published version to serve (a ref until apply)
    config_name: str
    hooks: dict[str, str]  # lifecycle event (BeforeAllowTraffic) → hook function
    description: str  # "canary 10% for 15s, then 100%: diagnosis 1.0.0 → 1.1.0"
    # A shadow step first: the function's shadow alias points at the target version (its
    # serving version copies requests there) until the BeforeAllowTraffic hook judges them.
    shadow: bool | Absent = ABSENT


def appspec(p: AliasDeployment, current: str) -> dict[str, Any]:
    """The AppSpec of a Lambda deployment (version 0.0): one function, its alias, the
    version serving now and the one to serve, and the hooks."""
    spec: dict[str, Any] = {"version": 0.0, "Resources": [{p.function_name: {
        "Type": "AWS::Lambda::Function",
        "Properties": {"Name": p.function_name, "Alias": p.alias, "CurrentVersion": current,
                       "TargetVersion": str(p.target_version)}}}]}
    if p.hooks:
        spec["Hooks"] = [{event: fn} for event, fn in sorted(p.hooks.items())]
    return spec


def running(ctx: Context, application: str, group: str) -> list[str]:
    """Deployments of the group that have not ended."""
    return list(ctx.pages(ctx.client("codedeploy"), "list_deployments", "deployments",
                          applicationName=application, deploymentGroupName=group,
                          includeOnlyStatuses=list(ACTIVE)))


def stop(ctx: Context, deployment_id: str, *, rollback: bool) -> None:
    """Stop a deployment that runs (rolled back or not) and wait until it has ended."""
    cd = ctx.client("codedeploy")
    got = ctx.attempt(lambda: cd.stop_deployment(deploymentId=deployment_id,
                                                 autoRollbackEnabled=rollback),
                      codes=NOT_ACTIVE)
    if isinstance(got, Refused):
        return
    ctx.poll(f"deployment {deployment_id} to stop", lambda: cd.get_deployment(
        deploymentId=deployment_id)["deploymentInfo"]["status"] in DONE,
        hint="see it with `mlops rollout status`; deploying again stops it again")


def create(ctx: Context, p: AliasDeployment) -> Outputs:
    current = ctx.client("lambda").get_alias(FunctionName=p.function_name, Name=p.alias)
    serving = str(current["FunctionVersion"])
    weights = (current.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    target = str(p.target_version)
    base: Outputs = {"current_version": serving, "target_version": target,
                     "config_name": p.config_name}
    if serving == target and not weights:
        return {**base, "deployment_id": "", "status": SKIPPED}
    for other in running(ctx, p.application_name, p.group_name):  # superseded
        stop(ctx, other, rollback=True)
    if p.shadow:
        from framework import shadow

        shadow.start(ctx.client("lambda"), p.function_name, target)
    made = ctx.client("codedeploy").create_deployment(
        applicationName=p.application_name, deploymentGroupName=p.group_name,
        deploymentConfigName=p.config_name, description=p.description[:100],
        revision={"revisionType": "AppSpecContent", "appSpecContent": {
            "content": json.dumps(appspec(p, serving), sort_keys=True)}})
    return {**base, "deployment_id": made["deploymentId"], "status": "Created"}


def observe(ctx: Context, d: Deployed[AliasDeployment]) -> Outputs | None:
    """The deployment as CodeDeploy reports it now."""
    deployment_id = str(d.outputs.get("deployment_id") or "")
    if not deployment_id:
        return None
    got = ctx.attempt(lambda: ctx.client("codedeploy").get_deployment(
        deploymentId=deployment_id), codes=frozenset({"DeploymentDoesNotExistException"}))
    if isinstance(got, Refused):
        return None
    info = got["deploymentInfo"]
    out = {**d.outputs, "status": info["status"]}
    error = info.get("errorInformation") or {}
    if error.get("message"):
        out["error"] = f"{error.get('code', '')}: {error['message']}"
    rollback = (info.get("rollbackInfo") or {}).get("rollbackDeploymentId")
    if rollback:
        out["rollback_deployment_id"] = rollback
    return out


def update(ctx: Context, p: AliasDeployment, before: Deployed[AliasDeployment] | None,
           ) -> Outputs:
    """Record how the deployment went (it is never started again: a new version is a new
    deployment, which the plan creates)."""
    if before is None:
        return create(ctx, p)
    return observe(ctx, before) or dict(before.outputs)


def delete(ctx: Context, d: Deployed[AliasDeployment], _destroying: bool) -> None:
    deployment_id = str(d.outputs.get("deployment_id") or "")
    if deployment_id and deployment_id in running(ctx, d.props.application_name,
                                                  d.props.group_name):
        stop(ctx, deployment_id, rollback=True)


def exists(_ctx: Context, _d: Deployed[AliasDeployment]) -> bool:
    return True  # a deployment is history: it is never made again


KIND = Kind(
    props=AliasDeployment, services=("codedeploy", "lambda"),
    replace_on=frozenset({"function_name", "alias"}),
    create=create, update=update, delete=delete, exists=exists, observe=observe,
    cloudformation=Implicit("CloudFormation starts the deployment itself when the alias's "
                            "version changes (its UpdatePolicy, CodeDeployLambdaAliasUpdate)"),
)

