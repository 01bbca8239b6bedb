"""http_api: the project's HTTP API (API Gateway v2); its stage is an ``api_stage`` of its own,
its routes and integrations are ``api_route`` and ``api_integration``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Stack

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class HttpApi(Props):
    kind = "http_api"

    name: str
    protocol: str
    stage: str
    tags: dict[str, str]


def outputs(item: dict[str, Any]) -> Outputs:
    return {"api_id": item["ApiId"], "endpoint": item.get("ApiEndpoint", "")}


def create(ctx: Context, p: HttpApi) -> Outputs:
    api = ctx.client("apigatewayv2")
    for item in ctx.pages(api, "get_apis", "Items"):
        if item["Name"] == p.name and item.get("Tags", {}) == p.tags:
            return outputs(item)  # adopt
    return outputs(api.create_api(Name=p.name, ProtocolType=p.protocol, Tags=p.tags))


def update(ctx: Context, p: HttpApi, before: Deployed[HttpApi] | None) -> Outputs:
    if before is None:
        return create(ctx, p)
    return outputs(ctx.client("apigatewayv2").update_api(ApiId=before.outputs["api_id"],
                                                         Name=p.name))


def delete(ctx: Context, d: Deployed[HttpApi], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("apigatewayv2").delete_api(ApiId=d.outputs["api_id"]))


def exists(ctx: Context, d: Deployed[HttpApi]) -> bool:
    ctx.client("apigatewayv2").get_api(ApiId=d.outputs["api_id"])
    return True


def cloudformation(p: HttpApi) -> CfnResource:
    return {"Type": "AWS::ApiGatewayV2::Api", "Properties": {
        "Name": p.name, "ProtocolType": p.protocol, "Tags": p.tags}}


KIND = Kind(
    props=HttpApi, services=("apigatewayv2",), replace_on=frozenset({"protocol"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation, attrs={"api_id": "Ref"},
                         outputs={"ApiEndpoint": "ApiEndpoint"}),
)
