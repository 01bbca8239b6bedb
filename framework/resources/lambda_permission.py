"""lambda_permission: who may invoke a function's alias (API Gateway for an endpoint,
EventBridge for a monitor's schedule), from which source."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from framework.resources.base import (
    ACCOUNT,
    REGION,
    CfnResource,
    Deployed,
    Kind,
    Outputs,
    Props,
    Ref,
    Stack,
)

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class LambdaPermission(Props):
    kind = "lambda_permission"

    function_name: str
    qualifier: str  # the alias
    statement_id: str
    principal: str  # apigateway.amazonaws.com, events.amazonaws.com
    source_arn: str | Ref


def create(ctx: Context, p: LambdaPermission) -> Outputs:
    lam = ctx.client("lambda")
    args = {"FunctionName": p.function_name, "Qualifier": p.qualifier,
            "StatementId": p.statement_id}
    ctx.ignore_missing(lambda: lam.remove_permission(**args))
    lam.add_permission(**args, Action="lambda:InvokeFunction", Principal=p.principal,
                       SourceArn=p.source_arn)
    return {"statement_id": p.statement_id}


def update(ctx: Context, p: LambdaPermission,
           _before: Deployed[LambdaPermission] | None) -> Outputs:
    return create(ctx, p)


def delete(ctx: Context, d: Deployed[LambdaPermission], _destroying: bool) -> None:
    p = d.props
    ctx.ignore_missing(lambda: ctx.client("lambda").remove_permission(
        FunctionName=p.function_name, Qualifier=p.qualifier, StatementId=p.statement_id))


def exists(ctx: Context, d: Deployed[LambdaPermission]) -> bool:
    p = d.props
    policy = ctx.client("lambda").get_policy(FunctionName=p.function_name,
                                             Qualifier=p.qualifier)
    statements = json.loads(policy["Policy"]).get("Statement", [])
    return any(s.get("Sid") == p.statement_id for s in statements)


def cloudformation(p: LambdaPermission) -> CfnResource:
    return {"Type": "AWS::Lambda::Permission", "Properties": {
        "FunctionName": (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{p.function_name}:"
                         f"{p.qualifier}"),
        "Action": "lambda:InvokeFunction", "Principal": p.principal,
        "SourceArn": p.source_arn}}


KIND = Kind(
    props=LambdaPermission, services=("lambda",), replace_on=frozenset({"*"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation),
)
