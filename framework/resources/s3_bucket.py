"""s3_bucket: the registry bucket (models, state, audit, captures, reports), versioned,
private and with S3 Object Lock enabled. Made before the stack by ``mlops deploy``: a registry
outlives any one stack.

Object Lock has no default retention here (it would lock every object of the bucket): the
audit log and the registry put their own objects with governance retention for the days the
bucket's ``mlops:lock-retention-days`` tag names (see ``framework.apply.audit``). A bucket made
before mlops enabled Object Lock gets it on its next deploy (AWS allows it on a versioned
bucket); what it held before stays unretained. Lifecycle rules expire the captures of
endpoints that declare ``capture.retain_days``; rules whose id does not start with ``mlops-``
(your own) are kept as they are.

With ``event_bridge`` (a stage with monitors) the bucket sends its object events to
EventBridge (``EventBridgeConfiguration``, in CloudFormation
``NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled``): each monitor's
landing rule picks the ``Object Created`` events of its endpoint's captures. EventBridge, not
S3's own notifications to a function: S3 refuses two notifications whose prefixes overlap for
one event type, and two monitors may watch one endpoint. Your own topic, queue and function
notifications on the bucket are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.errors import DeployError
from framework.resources.base import (
    ABSENT,
    Absent,
    Deployed,
    InRegistry,
    Kind,
    Outputs,
    Props,
    cfn_tags,
)

if TYPE_CHECKING:
    from framework.providers.aws import Context

RULE_PREFIX = "mlops-"  # lifecycle rules mlops owns; others are the user's


@dataclass(frozen=True, kw_only=True)
class S3Bucket(Props):
    kind = "s3_bucket"

    bucket: str
    versioning: bool
    region: str
    tags: dict[str, str]
    # Object Lock enabled on the bucket (no default retention); ABSENT in older states.
    object_lock: bool | Absent = ABSENT
    # mlops' lifecycle rules: [{"id", "prefix", "expire_days"}]
    lifecycle: list[dict[str, Any]] | Absent = ABSENT
    # object events sent to EventBridge (the monitors' landing rules); ABSENT: no monitor
    event_bridge: bool | Absent = ABSENT


def create(ctx: Context, p: S3Bucket) -> Outputs:
    kwargs: dict[str, Any] = {"Bucket": p.bucket}
    if p.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": p.region}
    if p.object_lock:
        kwargs["ObjectLockEnabledForBucket"] = True
    ctx.attempt(lambda: ctx.client("s3").create_bucket(**kwargs),
                codes={"BucketAlreadyOwnedByYou"})
    return update(ctx, p, None)


def _enable_object_lock(ctx: Context, bucket: str) -> None:
    """Object Lock on a bucket that has none yet (made before mlops enabled it)."""
    s3 = ctx.client("s3")
    got = ctx.attempt(lambda: s3.get_object_lock_configuration(Bucket=bucket),
                      codes={"ObjectLockConfigurationNotFoundError"})
    if not isinstance(got, dict) or got.get("ObjectLockConfiguration", {}).get(
            "ObjectLockEnabled") != "Enabled":
        refused = ctx.attempt(lambda: s3.put_object_lock_configuration(
            Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}),
            codes={"InvalidBucketState", "InvalidBucket", "InvalidRequest"})
        if not isinstance(refused, dict):
            ctx.warnings.append(
                f"s3://{bucket}: Object Lock could not be enabled ({refused.code}: "
                f"{refused.message}); audit records and released versions are chained and "
                "checked by `mlops audit --verify`, but not retained")


def lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """One of mlops' rules as S3 takes it: objects under the prefix expire after the days
    (a delete marker in a versioned bucket), their noncurrent versions a day later."""
    return {"ID": rule["id"], "Filter": {"Prefix": rule["prefix"]}, "Status": "Enabled",
            "Expiration": {"Days": int(rule["expire_days"])},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}


def _lifecycle(ctx: Context, bucket: str, rules: list[dict[str, Any]]) -> None:
    s3 = ctx.client("s3")
    got = ctx.attempt(lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket),
                      codes={"NoSuchLifecycleConfiguration"})
    theirs = [r for r in (got.get("Rules", []) if isinstance(got, dict) else [])
              if not str(r.get("ID", "")).startswith(RULE_PREFIX)]
    wanted = theirs + [lifecycle_rule(r) for r in rules]
    if wanted:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                              LifecycleConfiguration={"Rules": wanted})
    elif isinstance(got, dict):
        s3.delete_bucket_lifecycle(Bucket=bucket)


def _event_bridge(ctx: Context, bucket: str, enabled: bool) -> None:
    """The bucket's object events sent to EventBridge (or no longer), the rest of its
    notification configuration kept."""
    s3 = ctx.client("s3")
    got = {k: v for k, v in s3.get_bucket_notification_configuration(Bucket=bucket).items()
           if k != "ResponseMetadata"}
    if ("EventBridgeConfiguration" in got) == enabled:
        return
    if enabled:
        got["EventBridgeConfiguration"] = {}
    else:
        del got["EventBridgeConfiguration"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=got)


def update(ctx: Context, p: S3Bucket, before: Deployed[S3Bucket] | None) -> Outputs:
    s3 = ctx.client("s3")
    status = "Enabled" if p.versioning else "Suspended"
    s3.put_bucket_versioning(Bucket=p.bucket, VersioningConfiguration={"Status": status})
    if p.object_lock:
        _enable_object_lock(ctx, p.bucket)
    # Private whatever the account's defaults: models, captured inputs and the dashboard
    # are reached through roles and presigned links only.
    s3.put_public_access_block(Bucket=p.bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True})
    s3.put_bucket_tagging(Bucket=p.bucket, Tagging={"TagSet": cfn_tags(p.tags)})
    had_rules = before is not None and bool(before.props.lifecycle)
    if p.lifecycle or had_rules:
        _lifecycle(ctx, p.bucket, list(p.lifecycle or []))
    if p.event_bridge is True or (before is not None and before.props.event_bridge is True):
        _event_bridge(ctx, p.bucket, p.event_bridge is True)
    return {"bucket": p.bucket, "arn": f"arn:aws:s3:::{p.bucket}"}


def delete(ctx: Context, d: Deployed[S3Bucket], _destroying: bool) -> None:
    s3, bucket = ctx.client("s3"), d.props.bucket

    def empty_and_delete() -> None:
        # Always the first page again: what was deleted is gone from the listing, so no
        # marker is needed (a marker naming a deleted key ends some listings early). Versions
        # under governance retention (audit records, released versions) go only with
        # s3:BypassGovernanceRetention: a destroy removes the registry, trail included.
        while True:
            page = s3.list_object_versions(Bucket=bucket, MaxKeys=1000)
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                      for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if not doomed:
                break
            for i in range(0, len(doomed), 1000):
                failed = s3.delete_objects(Bucket=bucket, BypassGovernanceRetention=True,
                                           Delete={"Objects": doomed[i:i + 1000],
                                                   "Quiet": True}).get("Errors", [])
                if failed:
                    raise DeployError(
                        f"s3://{bucket}: {len(failed)} object version(s) could not be "
                        f"deleted, e.g. {failed[0].get('Key')}: {failed[0].get('Message')}",
                        hint="audit records and released model versions are under Object "
                             "Lock: destroying the registry needs s3:DeleteObjectVersion and "
                             "s3:BypassGovernanceRetention (the break-glass role), or waiting "
                             "out their retention; then destroy again")
        s3.delete_bucket(Bucket=bucket)

    ctx.ignore_missing(empty_and_delete)


def exists(ctx: Context, d: Deployed[S3Bucket]) -> bool:
    ctx.client("s3").head_bucket(Bucket=d.props.bucket)
    return True


KIND = Kind(
    props=S3Bucket, services=("s3",), replace_on=frozenset({"bucket", "region"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=InRegistry(),
)
