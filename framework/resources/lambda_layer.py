"""lambda_layer: a published layer version holding what one need of functions imports (built
by ``framework.layers``, its zip an ``s3_object`` in the registry). A published version is
immutable: any change publishes another, and older ones stay for the versions that use them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import (
    ABSENT,
    Absent,
    CfnResource,
    Deployed,
    Kind,
    LockItem,
    Outputs,
    Props,
    Stack,
)

if TYPE_CHECKING:
    from framework.plan.state import State
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class LambdaLayer(Props):
    kind = "lambda_layer"

    layer_name: str
    bucket: str
    key: str
    sha256: str
    need: str | Absent = ABSENT  # serve or monitor (not recorded by the single-layer era)
    runtimes: list[str]
    architectures: list[str]
    description: str
    # name → {"version", "file", "sha256"} of every wheel in it (recorded in mlops.lock)
    packages: dict[str, dict[str, str]] | Absent = ABSENT


def create(ctx: Context, p: LambdaLayer) -> Outputs:
    resp = ctx.client("lambda").publish_layer_version(
        LayerName=p.layer_name, Description=p.description,
        Content={"S3Bucket": p.bucket, "S3Key": p.key},
        CompatibleRuntimes=p.runtimes, CompatibleArchitectures=p.architectures)
    return {"layer_version_arn": resp["LayerVersionArn"], "version": resp["Version"]}


def update(ctx: Context, p: LambdaLayer, _before: Deployed[LambdaLayer] | None) -> Outputs:
    return create(ctx, p)


def replace(ctx: Context, p: LambdaLayer, _before: Deployed[LambdaLayer]) -> Outputs:
    return create(ctx, p)  # older versions stay: published versions use them


def delete(ctx: Context, d: Deployed[LambdaLayer], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("lambda").delete_layer_version(
        LayerName=d.props.layer_name, VersionNumber=int(d.outputs["version"])))


def exists(ctx: Context, d: Deployed[LambdaLayer]) -> bool:
    ctx.client("lambda").get_layer_version(LayerName=d.props.layer_name,
                                           VersionNumber=int(d.outputs["version"]))
    return True


def cloudformation(p: LambdaLayer) -> CfnResource:
    return {"Type": "AWS::Lambda::LayerVersion", "DeletionPolicy": "Retain",
            "Properties": {"LayerName": p.layer_name, "Description": p.description,
                           "Content": {"S3Bucket": p.bucket, "S3Key": p.key},
                           "CompatibleRuntimes": p.runtimes,
                           "CompatibleArchitectures": p.architectures}}


def lock(rid: str, p: LambdaLayer, _state: State) -> LockItem | None:
    if isinstance(p.need, Absent):
        return None
    entry: dict[str, Any] = {"need": p.need, "runtime": p.runtimes[0],
                             "architecture": p.architectures[0], "sha256": p.sha256,
                             "packages": p.packages or {}}
    return ("layers", rid.split(".", 1)[1], entry)


KIND = Kind(
    props=LambdaLayer, services=("lambda",), replace_on=frozenset({"*"}),
    create=create, update=update, replace=replace, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation, attrs={"layer_version_arn": "Ref"}),  # its Ref: ARN
    lock=lock,
)
