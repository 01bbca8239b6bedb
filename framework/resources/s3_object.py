"""s3_object: a file in the registry, addressed by content (SHA-256), optionally immutable
(a conditional put: a key never gets other bytes) and retained (a delete short of a destroy
leaves it): the handler zip, the layers' zips."""

from __future__ import annotations

import base64
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
    Refused,
)

if TYPE_CHECKING:
    from framework.plan.state import State
    from framework.providers.aws import Context

CODE_ID = "code"  # the logical id of the handler zip (recorded in mlops.lock)


@dataclass(frozen=True, kw_only=True)
class S3Object(Props):
    kind = "s3_object"

    bucket: str
    key: str
    sha256: str
    size: int
    source: str | Absent = ABSENT  # a file under the project root...
    content: str | Absent = ABSENT  # ...or the text itself (states of the first versions)
    content_type: str
    immutable: bool | Absent = ABSENT  # a conditional put: the key never gets other bytes
    retain: bool | Absent = ABSENT  # a delete short of a destroy leaves it


def body(ctx: Context, p: S3Object) -> bytes:
    """The bytes to upload, checked against the SHA-256 the plan was made with."""
    if not isinstance(p.content, Absent):
        data = p.content.encode()
    else:
        data = (ctx.root / str(p.source)).read_bytes()
    if hashlib.sha256(data).hexdigest() != p.sha256:
        raise DeployError(f"{p.key if isinstance(p.source, Absent) else p.source} changed "
                          "since it was planned",
                          hint="run `mlops plan` again and deploy the new plan")
    return data


def create(ctx: Context, p: S3Object) -> Outputs:
    s3 = ctx.client("s3")
    kwargs: dict[str, Any] = {
        "Bucket": p.bucket, "Key": p.key, "Body": body(ctx, p),
        "ContentType": p.content_type, "Metadata": {"sha256": p.sha256},
        "ChecksumSHA256": base64.b64encode(bytes.fromhex(p.sha256)).decode(),
    }
    if p.immutable:
        kwargs["IfNoneMatch"] = "*"
    resp = ctx.attempt(lambda: s3.put_object(**kwargs), codes={"PreconditionFailed", "412"})
    if isinstance(resp, Refused):
        head = s3.head_object(Bucket=p.bucket, Key=p.key)
        if head.get("Metadata", {}).get("sha256") != p.sha256:
            raise DeployError(f"s3://{p.bucket}/{p.key} already exists with other content",
                              hint="a released version never changes: bump the version",
                              ) from resp.error
        return {"etag": head["ETag"], "version_id": head.get("VersionId")}
    return {"etag": resp["ETag"], "version_id": resp.get("VersionId")}


def update(ctx: Context, p: S3Object, _before: Deployed[S3Object] | None) -> Outputs:
    return create(ctx, p)


def replace(ctx: Context, p: S3Object, before: Deployed[S3Object]) -> Outputs:
    if not before.props.retain:
        delete(ctx, before, False)
    return create(ctx, p)


def delete(ctx: Context, d: Deployed[S3Object], destroying: bool) -> None:
    if d.props.retain and not destroying:
        return  # registry content outlives the deploy that uploaded it
    ctx.ignore_missing(lambda: ctx.client("s3").delete_object(Bucket=d.props.bucket,
                                                              Key=d.props.key))


def exists(ctx: Context, d: Deployed[S3Object]) -> bool:
    ctx.client("s3").head_object(Bucket=d.props.bucket, Key=d.props.key)
    return True


def kept(p: S3Object) -> str | None:
    return "object kept in the registry" if p.retain else None


def immutable(p: S3Object, before: S3Object) -> str | None:
    if not p.immutable or before.key != p.key or before.sha256 == p.sha256:
        return None
    return (f"s3://{p.bucket}/{p.key} is immutable and already holds other bytes (sha256 "
            f"{str(before.sha256)[:12]}…, now {p.sha256[:12]}…)")


def lock(rid: str, p: S3Object, _state: State) -> LockItem | None:
    return ("code", None, {"sha256": p.sha256, "key": p.key}) if rid == CODE_ID else None


KIND = Kind(
    props=S3Object, services=("s3",), replace_on=frozenset({"bucket", "key"}),
    create=create, update=update, replace=replace, delete=delete, exists=exists,
    cloudformation=InRegistry(), kept=kept, immutable=immutable, lock=lock,
)
