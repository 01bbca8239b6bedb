"""lambda_alias: a function's ``live`` alias, the name every caller invokes. An endpoint whose
rollout is not all at once names the CodeDeploy deployment group that moves it
(``deployment_group``): then only a deployment (``alias_deployment``) moves it to a new
version, and what the alias records is the version it serves, read from Lambda."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import (
    ABSENT,
    CONFLICT,
    Absent,
    CfnResource,
    Deployed,
    Kind,
    Outputs,
    Props,
    Ref,
    Refused,
    Stack,
)

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class LambdaAlias(Props):
    kind = "lambda_alias"

    function_name: str
    alias: str
    function_version: str | Ref  # the published version's number (a ref until apply)
    endpoint: str | Absent = ABSENT  # an endpoint's alias: the endpoint...
    rollout: dict[str, Any] | Absent = ABSENT  # ...and how a new version reaches it
    # The CodeDeploy application and deployment group that move it to new versions.
    deployment_group: dict[str, str] | Absent = ABSENT  # {"application", "group"}


def live(alias: dict[str, Any]) -> Outputs:
    """The outputs of a GetAlias/UpdateAlias answer: the version it serves, and the share of
    another version while a deployment shifts traffic."""
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    out: Outputs = {"arn": alias["AliasArn"], "version": str(alias["FunctionVersion"])}
    if weights:
        out["weights"] = {str(k): float(v) for k, v in sorted(weights.items())}
    return out


def create(ctx: Context, p: LambdaAlias) -> Outputs:
    resp = ctx.attempt(lambda: ctx.client("lambda").create_alias(
        FunctionName=p.function_name, Name=p.alias, FunctionVersion=str(p.function_version)),
        codes=CONFLICT)
    if isinstance(resp, Refused):
        return update(ctx, p, None)
    return live(resp)


def update(ctx: Context, p: LambdaAlias, _before: Deployed[LambdaAlias] | None) -> Outputs:
    lam = ctx.client("lambda")
    current = lam.get_alias(FunctionName=p.function_name, Name=p.alias)
    if p.deployment_group or str(current["FunctionVersion"]) == str(p.function_version):
        # A deployment moves it (or there is nothing to move): what it serves is recorded,
        # and the weights of a deployment under way are left alone.
        return live(current)
    return live(lam.update_alias(FunctionName=p.function_name, Name=p.alias,
                                 FunctionVersion=str(p.function_version), RoutingConfig={}))


def delete(ctx: Context, d: Deployed[LambdaAlias], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("lambda").delete_alias(
        FunctionName=d.props.function_name, Name=d.props.alias))


def exists(ctx: Context, d: Deployed[LambdaAlias]) -> bool:
    ctx.client("lambda").get_alias(FunctionName=d.props.function_name, Name=d.props.alias)
    return True


def observe(ctx: Context, d: Deployed[LambdaAlias]) -> Outputs | None:
    got = ctx.attempt(lambda: ctx.client("lambda").get_alias(
        FunctionName=d.props.function_name, Name=d.props.alias), missing=True)
    return None if isinstance(got, Refused) else live(got)


def cloudformation(p: LambdaAlias) -> CfnResource:
    body: CfnResource = {"Type": "AWS::Lambda::Alias", "Properties": {
        "FunctionName": p.function_name, "Name": p.alias,
        "FunctionVersion": p.function_version}}
    if p.deployment_group:
        # As SAM's DeploymentPreference: a new version is deployed by CodeDeploy.
        body["UpdatePolicy"] = {"CodeDeployLambdaAliasUpdate": {
            "ApplicationName": p.deployment_group["application"],
            "DeploymentGroupName": p.deployment_group["group"]}}
        for key, field in (("before_allow_traffic", "BeforeAllowTrafficHook"),
                           ("after_allow_traffic", "AfterAllowTrafficHook")):
            hook = p.deployment_group.get(key)
            if hook:
                body["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"][field] = hook
    return body


KIND = Kind(
    props=LambdaAlias, services=("lambda",), replace_on=frozenset({"function_name", "alias"}),
    create=create, update=update, delete=delete, exists=exists, observe=observe,
    cloudformation=Stack(cloudformation),
)
