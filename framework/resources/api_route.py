"""api_route: one route of the HTTP API (an endpoint's, its feedback/OpenAPI/OIP v2 routes,
the OIP v2 server routes) to an integration, open or behind IAM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Ref, Stack

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class ApiRoute(Props):
    kind = "api_route"

    api_id: str | Ref
    route_key: str  # "POST /fraud/score"
    target: str | Ref  # "integrations/{integration id}"
    authorization: str  # the endpoint's auth: none, api_key (checked by the handler), iam


def authorization_type(p: ApiRoute) -> str:
    return "AWS_IAM" if p.authorization == "iam" else "NONE"


def create(ctx: Context, p: ApiRoute) -> Outputs:
    resp = ctx.client("apigatewayv2").create_route(
        ApiId=p.api_id, RouteKey=p.route_key, Target=p.target,
        AuthorizationType=authorization_type(p))
    return {"route_id": resp["RouteId"], "api_id": p.api_id}


def update(ctx: Context, p: ApiRoute, before: Deployed[ApiRoute] | None) -> Outputs:
    if before is None:
        return create(ctx, p)
    rid = before.outputs["route_id"]
    ctx.client("apigatewayv2").update_route(
        ApiId=p.api_id, RouteId=rid, RouteKey=p.route_key, Target=p.target,
        AuthorizationType=authorization_type(p))
    return {"route_id": rid, "api_id": p.api_id}


def delete(ctx: Context, d: Deployed[ApiRoute], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("apigatewayv2").delete_route(
        ApiId=d.outputs["api_id"], RouteId=d.outputs["route_id"]))


def exists(ctx: Context, d: Deployed[ApiRoute]) -> bool:
    ctx.client("apigatewayv2").get_route(ApiId=d.outputs["api_id"],
                                         RouteId=d.outputs["route_id"])
    return True


def cloudformation(p: ApiRoute) -> CfnResource:
    return {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
        "ApiId": p.api_id, "RouteKey": p.route_key, "Target": p.target,
        "AuthorizationType": authorization_type(p)}}


KIND = Kind(
    props=ApiRoute, services=("apigatewayv2",), replace_on=frozenset({"api_id"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation),
)
