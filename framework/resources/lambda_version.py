"""lambda_version: a published version of a function. Publishing is the only operation: a
change publishes another, the old one stays for rollback, and versions go with their function
on a destroy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Stack
from framework.resources.lambda_function import change

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class LambdaVersion(Props):
    kind = "lambda_version"

    function_name: str
    function_digest: str  # of the function's properties and its layer's bytes


def description(p: LambdaVersion) -> str:
    return f"digest {p.function_digest[:16]}"


def create(ctx: Context, p: LambdaVersion) -> Outputs:
    lam, name = ctx.client("lambda"), p.function_name
    resp = change(ctx, name, lambda: lam.publish_version(FunctionName=name,
                                                         Description=description(p)))
    return {"version": resp["Version"], "arn": resp["FunctionArn"],
            "code_sha256": resp["CodeSha256"]}


def update(ctx: Context, p: LambdaVersion, _before: Deployed[LambdaVersion] | None) -> Outputs:
    return create(ctx, p)


def replace(ctx: Context, p: LambdaVersion, _before: Deployed[LambdaVersion]) -> Outputs:
    return create(ctx, p)  # the old version stays, for rollback


def delete(ctx: Context, d: Deployed[LambdaVersion], destroying: bool) -> None:
    if destroying:
        return  # deleted with its function
    ctx.ignore_missing(lambda: ctx.client("lambda").delete_function(
        FunctionName=d.props.function_name, Qualifier=d.outputs["version"]))


def exists(ctx: Context, d: Deployed[LambdaVersion]) -> bool:
    ctx.client("lambda").get_function(FunctionName=d.props.function_name,
                                      Qualifier=str(d.outputs["version"]))
    return True


def cloudformation(p: LambdaVersion) -> CfnResource:
    return {"Type": "AWS::Lambda::Version", "DeletionPolicy": "Retain",
            "Properties": {"FunctionName": p.function_name, "Description": description(p)}}


KIND = Kind(
    props=LambdaVersion, services=("lambda",), replace_on=frozenset({"*"}),
    create=create, update=update, replace=replace, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation, attrs={"version": "Version"}),
)
