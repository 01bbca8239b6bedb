"""api_integration: an endpoint's Lambda proxy integration (payload v2.0) on the HTTP API,
pointing at the function's ``live`` alias."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Ref, Stack

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class ApiIntegration(Props):
    kind = "api_integration"

    api_id: str | Ref
    integration_uri: str
    payload_format_version: str
    timeout_ms: int


def arguments(p: ApiIntegration) -> dict[str, Any]:
    return {"ApiId": p.api_id, "IntegrationUri": p.integration_uri,
            "PayloadFormatVersion": p.payload_format_version, "TimeoutInMillis": p.timeout_ms}


def create(ctx: Context, p: ApiIntegration) -> Outputs:
    resp = ctx.client("apigatewayv2").create_integration(
        IntegrationType="AWS_PROXY", IntegrationMethod="POST", **arguments(p))
    return {"integration_id": resp["IntegrationId"], "api_id": p.api_id}


def update(ctx: Context, p: ApiIntegration,
           before: Deployed[ApiIntegration] | None) -> Outputs:
    if before is None:
        return create(ctx, p)
    iid = before.outputs["integration_id"]
    ctx.client("apigatewayv2").update_integration(IntegrationId=iid, **arguments(p))
    return {"integration_id": iid, "api_id": p.api_id}


def delete(ctx: Context, d: Deployed[ApiIntegration], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("apigatewayv2").delete_integration(
        ApiId=d.outputs["api_id"], IntegrationId=d.outputs["integration_id"]))


def exists(ctx: Context, d: Deployed[ApiIntegration]) -> bool:
    ctx.client("apigatewayv2").get_integration(ApiId=d.outputs["api_id"],
                                               IntegrationId=d.outputs["integration_id"])
    return True


def cloudformation(p: ApiIntegration) -> CfnResource:
    return {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
        "ApiId": p.api_id, "IntegrationType": "AWS_PROXY",
        "IntegrationUri": p.integration_uri,
        "PayloadFormatVersion": p.payload_format_version,
        "TimeoutInMillis": p.timeout_ms}}


KIND = Kind(
    props=ApiIntegration, services=("apigatewayv2",), replace_on=frozenset({"api_id"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation, attrs={"integration_id": "Ref"}),
)
