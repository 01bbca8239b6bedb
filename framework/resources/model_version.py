"""model_version: a registered version of a model (artifact, reference profile, then
metadata.json as the commit: see ``framework.registry``). A released version never gets other
bytes; a version no longer declared stays in the registry (only a destroy deletes it); its
gates are checked before it ships, not deployed."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.errors import DeployError
from framework.resources.base import (
    ABSENT,
    Absent,
    Deployed,
    InRegistry,
    Kind,
    LockItem,
    Outputs,
    Props,
)

if TYPE_CHECKING:
    from framework.plan.state import State
    from framework.providers.aws import Context

KEPT = "version kept in the registry"  # what a delete short of a destroy leaves
FILES = ("metadata.json", "reference.json", "model.onnx")  # the commit first


@dataclass(frozen=True, kw_only=True)
class ModelVersion(Props):
    kind = "model_version"

    bucket: str
    name: str
    version: str
    prefix: str  # models/{name}/{version}
    sha256: str
    size: int
    source: str  # the artifact, under the project root
    reference: str | None  # the drift baseline's data, under the project root
    metadata: dict[str, Any]
    gates: dict[str, Any] | Absent = ABSENT  # checked, not deployed (none recorded before)


def create(ctx: Context, p: ModelVersion) -> Outputs:
    from framework.registry.service import register_files
    from framework.registry.store import Registry

    artifact = ctx.root / p.source
    if hashlib.sha256(artifact.read_bytes()).hexdigest() != p.sha256:
        raise DeployError(f"{p.source} changed since it was planned",
                          hint="run `mlops plan` again and deploy the new plan")
    reference = ctx.root / p.reference if p.reference else None
    caller = str(ctx.client("sts").get_caller_identity()["Arn"])  # the version's author
    done = register_files(Registry(s3=ctx.client("s3"), bucket=p.bucket, actor=caller),
                          ctx.root, artifact, dict(p.metadata), reference)
    return {"prefix": p.prefix, "sha256": p.sha256, "registered": done.created}


def update(ctx: Context, p: ModelVersion, _before: Deployed[ModelVersion] | None) -> Outputs:
    return create(ctx, p)


def delete(ctx: Context, d: Deployed[ModelVersion], destroying: bool) -> None:
    if not destroying:
        return  # registered versions outlive the deploys that registered them
    s3 = ctx.client("s3")
    for name in FILES:
        ctx.ignore_missing(functools.partial(s3.delete_object, Bucket=d.props.bucket,
                                             Key=f"{d.props.prefix}/{name}"))


def exists(ctx: Context, d: Deployed[ModelVersion]) -> bool:
    ctx.client("s3").head_object(Bucket=d.props.bucket, Key=f"{d.props.prefix}/metadata.json")
    return True


def immutable(p: ModelVersion, before: ModelVersion) -> str | None:
    if before.version != p.version or before.sha256 == p.sha256:
        return None
    return (f"{p.name}@{p.version} is registered with other bytes (sha256 "
            f"{str(before.sha256)[:12]}…, now {p.sha256[:12]}…)")


def lock(_rid: str, p: ModelVersion, _state: State) -> LockItem:
    return ("models", f"{p.name}@{p.version}", {"sha256": p.sha256, "size": p.size})


KIND = Kind(
    props=ModelVersion, services=("s3", "sts"),
    replace_on=frozenset({"bucket", "name", "version"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=InRegistry(), retained=True, checked_only=frozenset({"gates"}),
    kept=lambda _p: KEPT, immutable=immutable, lock=lock,
)
