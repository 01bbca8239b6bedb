"""api_stage: the HTTP API's ``$default`` stage: auto-deploy, an access log (one JSON line
per request, to a log group of its own) and throttling, the API's default and per route."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import (
    CONFLICT,
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
class ApiStage(Props):
    kind = "api_stage"

    api_id: str | Ref
    stage: str
    auto_deploy: bool
    access_log: dict[str, str] | None  # {"destination_arn", "format"}; None: no access log
    throttle: dict[str, Any] | None  # {"rate", "burst"}: the API's default; None: AWS's
    route_throttles: dict[str, dict[str, Any]]  # route key → {"rate", "burst"}


def arguments(p: ApiStage) -> dict[str, Any]:
    def throttle(t: dict[str, Any]) -> dict[str, Any]:
        return {"ThrottlingRateLimit": float(t["rate"]), "ThrottlingBurstLimit": int(t["burst"])}

    args: dict[str, Any] = {
        "ApiId": p.api_id, "StageName": p.stage, "AutoDeploy": p.auto_deploy,
        "DefaultRouteSettings": throttle(p.throttle) if p.throttle else {},
        "RouteSettings": {k: throttle(v) for k, v in sorted(p.route_throttles.items())},
    }
    if p.access_log:
        args["AccessLogSettings"] = {"DestinationArn": p.access_log["destination_arn"],
                                     "Format": p.access_log["format"]}
    return args


def create(ctx: Context, p: ApiStage) -> Outputs:
    made = ctx.attempt(lambda: ctx.client("apigatewayv2").create_stage(**arguments(p)),
                       codes=CONFLICT)
    if isinstance(made, Refused):
        return update(ctx, p, None)  # made by an older deploy with the API
    return {"stage": p.stage, "api_id": p.api_id}


def update(ctx: Context, p: ApiStage, before: Deployed[ApiStage] | None) -> Outputs:
    api = ctx.client("apigatewayv2")
    args = arguments(p)
    # moto 5.2 has no UpdateStage (it answers 500): off AWS only, the stage is made again
    # with the new settings.
    done = ctx.attempt(lambda: api.update_stage(**args),
                       when=lambda r: ctx.off_aws and r.status in (500, 501))
    if isinstance(done, Refused):
        api.delete_stage(ApiId=p.api_id, StageName=p.stage)
        api.create_stage(**args)
        return {"stage": p.stage, "api_id": p.api_id}
    if before is not None and before.props.access_log and not p.access_log:
        ctx.ignore_missing(lambda: api.delete_access_log_settings(ApiId=p.api_id,
                                                                  StageName=p.stage))
    old = (before.props.route_throttles if before is not None else None) or {}
    for key in sorted(set(old) - set(p.route_throttles)):
        ctx.ignore_missing(functools.partial(api.delete_route_settings, ApiId=p.api_id,
                                             StageName=p.stage, RouteKey=key))
    return {"stage": p.stage, "api_id": p.api_id}


def delete(ctx: Context, d: Deployed[ApiStage], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("apigatewayv2").delete_stage(
        ApiId=d.outputs["api_id"], StageName=d.outputs["stage"]))


def exists(ctx: Context, d: Deployed[ApiStage]) -> bool:
    # props hold the API as a reference; the outputs, what it resolved to
    ctx.client("apigatewayv2").get_stage(ApiId=d.outputs["api_id"],
                                         StageName=d.outputs["stage"])
    return True


def cloudformation(p: ApiStage) -> CfnResource:
    def throttle(t: dict[str, Any]) -> dict[str, Any]:
        return {"ThrottlingRateLimit": t["rate"], "ThrottlingBurstLimit": t["burst"]}

    props: dict[str, Any] = {"ApiId": p.api_id, "StageName": p.stage,
                             "AutoDeploy": p.auto_deploy}
    if p.access_log:
        props["AccessLogSettings"] = {"DestinationArn": p.access_log["destination_arn"],
                                      "Format": p.access_log["format"]}
    if p.throttle:
        props["DefaultRouteSettings"] = throttle(p.throttle)
    if p.route_throttles:
        props["RouteSettings"] = {k: throttle(v) for k, v in p.route_throttles.items()}
    return {"Type": "AWS::ApiGatewayV2::Stage", "Properties": props}


KIND = Kind(
    props=ApiStage, services=("apigatewayv2",), replace_on=frozenset({"api_id", "stage"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation),
)
