"""s3_bucket_policy: the registry bucket's policy, which makes AWS refuse what must not
happen to it — an overwrite of a released model version's files, approvals or alias history
(a PutObject without ``If-None-Match``), and the deletion of an audit record, a chain link or
a released version (or a change of their retention) — by anyone but the break-glass roles.
The statements come from ``infra/iam/registry-bucket-policy.json``.

It grants nothing: every statement is a Deny, so access stays with the roles' own policies.
It is applied after the model versions it protects are registered, and removed first on a
destroy, so the destroy's own deletions are not refused by it. moto stores a bucket policy
but never evaluates one: locally the Object Lock retention and the write conditions hold, the
policy does not (``tests/resources/test_bucket_policy.py`` evaluates its statements)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Stack

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class S3BucketPolicy(Props):
    kind = "s3_bucket_policy"

    bucket: str
    policy: dict[str, Any]


def create(ctx: Context, p: S3BucketPolicy) -> Outputs:
    ctx.client("s3").put_bucket_policy(Bucket=p.bucket,
                                       Policy=json.dumps(p.policy, sort_keys=True))
    return {"bucket": p.bucket}


def update(ctx: Context, p: S3BucketPolicy,
           _before: Deployed[S3BucketPolicy] | None) -> Outputs:
    return create(ctx, p)


def delete(ctx: Context, d: Deployed[S3BucketPolicy], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("s3").delete_bucket_policy(Bucket=d.props.bucket))


def exists(ctx: Context, d: Deployed[S3BucketPolicy]) -> bool:
    got = ctx.attempt(lambda: ctx.client("s3").get_bucket_policy(Bucket=d.props.bucket),
                      codes={"NoSuchBucketPolicy"}, missing=True)
    return isinstance(got, dict) and bool(got.get("Policy"))


def cloudformation(p: S3BucketPolicy) -> CfnResource:
    # The registry outlives any one stack: so does what guards it.
    return {"Type": "AWS::S3::BucketPolicy", "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {"Bucket": p.bucket, "PolicyDocument": p.policy}}


KIND = Kind(
    props=S3BucketPolicy, services=("s3",), replace_on=frozenset({"bucket"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation),
)
